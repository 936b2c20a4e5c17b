"""The image heads by name: :data:`HEAD_NAMES` and :func:`get_head`."""

from __future__ import annotations

import dataclasses

from jaxvae.likelihoods.bernoulli import Bernoulli
from jaxvae.likelihoods.continuous import Gaussian, Laplace, LearnedGaussian
from jaxvae.likelihoods.discretized import DiscretizedLogistic, DiscretizedLogisticMixture

_HEADS = {"bernoulli": Bernoulli, "gaussian": Gaussian, "learned-gaussian": LearnedGaussian,
          "laplace": Laplace, "logistic": DiscretizedLogistic,
          "logistic-mixture": DiscretizedLogisticMixture}
#: the names :func:`get_head` knows (``_`` may replace ``-``)
HEAD_NAMES = tuple(_HEADS)


def get_head(name: str, **kwargs):
    """Head by name: one of :data:`HEAD_NAMES` (``learned_gaussian`` is the same as
    ``learned-gaussian``).

    ``bernoulli``; ``gaussian`` (fixed ``scale=``); ``learned-gaussian`` (``min_scale=``,
    ``sharing=``); ``laplace`` (fixed ``scale=``); ``logistic`` (``num_bits=``,
    ``min_scale=``); ``logistic-mixture`` (``num_components=``, ``num_bits=``,
    ``min_scale=``).

    Args: ``name``; ``**kwargs``, the head's fields. Returns: the head (a frozen dataclass).
    """
    key = name.replace("_", "-") if isinstance(name, str) else name
    if key not in _HEADS:
        raise ValueError(f"unknown likelihood {name!r}; expected one of {', '.join(HEAD_NAMES)}")
    cls = _HEADS[key]
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise ValueError(f"likelihood {name!r} takes {fields or 'no options'}, got {unknown}")
    return cls(**kwargs)
