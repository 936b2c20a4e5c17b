"""The worked example of docs/own_model.md runs as written and trains the model."""

import os
import re

import jax
import numpy as np

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: str) -> list[str]:
    with open(os.path.join(DOCS, page), encoding="utf-8") as f:
        return FENCE.findall(f.read())


def test_own_model_page_runs_and_trains(fast_compilation, capsys):
    blocks = python_blocks("own_model.md")
    assert len(blocks) >= 4
    namespace: dict = {"__name__": "own_model_page"}
    for block in blocks:
        exec(compile(block, "docs/own_model.md", "exec"), namespace)

    import jaxvae

    model, params, state = namespace["model"], namespace["params"], namespace["state"]
    assert isinstance(model, jaxvae.Model)
    assert int(state.step) > 0
    changed = jax.tree_util.tree_map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                                     params, state.params)
    assert all(jax.tree_util.tree_leaves(changed))
    bound = float(namespace["metrics"]["bound"])
    assert np.isfinite(bound) and bound < 0
    ll = np.asarray(namespace["ll"])
    assert ll.shape == (namespace["x"].shape[0],)
    assert np.all(np.isfinite(ll)) and -2000 < ll.mean() < 0
    # training helped: the trained model explains the data better than at initialization
    before = jaxvae.log_likelihood(model, params, namespace["x"], jax.random.key(3),
                                   num_samples=100)
    assert ll.mean() > np.mean(before)
    assert "nats" in capsys.readouterr().out
