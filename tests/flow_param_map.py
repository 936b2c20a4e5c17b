"""Maps a flow VAE's parameters saved before the flows/models split (commit da3325f) to the
current layout, so that pinned values computed with the old code can be checked against
the new code (see scripts/pin_values.py).

Old layout (``jaxvae.flows.FlowEncoder._net_params``): the IAF / NICE networks were loose
arrays at the encoder's level, step i of ``flow`` in {"iaf", "nice"} with L hidden layers:

    encoder/{flow}_{i}_kernel_{j}, encoder/{flow}_{i}_bias_{j}      j = 0..L (j = L: output)
    encoder/{flow}_{i}_context_kernel

New layout (:class:`jaxvae.models.MADE` / :class:`jaxvae.models.NICEShift` submodules):

    encoder/{flow}_{i}/hidden_{j}/{kernel,bias}   j < L
    encoder/{flow}_{i}/out/{kernel,bias}
    encoder/{flow}_{i}/context/kernel

Shapes and values are unchanged; every other parameter (``MLP_0``, ``loc``, ``raw_scale``,
``context``, ``planar``, ``radial``, the decoder) keeps its path. The map only relabels
leaves, so it maps gradients saved in the old layout too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["old_to_new"]


def _step_tree(flow: str, step: int, old: Mapping, layers: int) -> dict:
    """The new ``{hidden_j, out, context}`` subtree of step ``step`` of ``old``."""
    prefix = f"{flow}_{step}_"
    tree = {}
    for j in range(layers + 1):
        name = "out" if j == layers else f"hidden_{j}"
        tree[name] = {"kernel": old[f"{prefix}kernel_{j}"], "bias": old[f"{prefix}bias_{j}"]}
    tree["context"] = {"kernel": old[f"{prefix}context_kernel"]}
    return tree


def _encoder_old_to_new(encoder, old: Mapping) -> dict:
    flow, num_flows, layers = encoder.flow, encoder.num_flows, encoder.flow_layers
    if flow not in ("iaf", "nice") or num_flows == 0:
        return dict(old)
    pattern = re.compile(rf"{flow}_\d+_(kernel_\d+|bias_\d+|context_kernel)$")
    loose = sorted(k for k in old if pattern.match(k))
    want = num_flows * (2 * (layers + 1) + 1)
    if len(loose) != want:
        raise ValueError(
            f"old_params: expected {want} loose {flow} arrays for num_flows={num_flows}, "
            f"flow_layers={layers}; found {len(loose)}: {loose}")
    try:
        steps = {f"{flow}_{i}": _step_tree(flow, i, old, layers) for i in range(num_flows)}
    except KeyError as e:
        raise ValueError(f"old_params: encoder has no array {e.args[0]!r} (old layout "
                         f"{flow}_{{i}}_kernel_{{j}}, ..._bias_{{j}}, ..._context_kernel)") from e
    kept = {k: v for k, v in old.items() if k not in loose}
    return {**kept, **steps}


def old_to_new(model, old_params):
    """``old_params`` of a :func:`jaxvae.flow_vae` model (Flax variables
    ``{"params": {"encoder": ..., "decoder": ...}}`` or the inner dict) in the layout of
    commit da3325f -> the same arrays in the current layout of ``model.init_params``.

    Raises ValueError when the encoder does not hold exactly the old loose arrays that
    ``model.encoder`` (its ``flow``, ``num_flows``, ``flow_layers``) implies.
    """
    if set(old_params) == {"params"}:
        return {"params": old_to_new(model, old_params["params"])}
    if "encoder" not in old_params:
        raise ValueError(f"old_params must hold an 'encoder' tree, got keys {sorted(old_params)}")
    new = dict(old_params)
    new["encoder"] = _encoder_old_to_new(model.encoder, old_params["encoder"])
    return new
