"""Nearest training images of generated samples: a check for memorisation.

A model that stores its training set can produce samples that are (near) copies of
training images; such samples lie much closer to the training set than unseen images of
the same distribution do. :func:`copy_check` compares the two.
"""

from __future__ import annotations

import numpy as np

from jaxvae import _checks

__all__ = ["nearest_neighbours", "copy_check"]


def _flat(images, name: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim < 2 or images.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch [N, *event], got shape "
                         f"{tuple(images.shape)}")
    _checks.batch(images, name=name)
    return images.reshape(images.shape[0], -1).astype(np.float64)


def _same_event(a, b, name_a: str, name_b: str) -> None:
    if tuple(np.shape(a)[1:]) != tuple(np.shape(b)[1:]):
        raise ValueError(f"{name_a} and {name_b} must have the same image shape, got "
                         f"{tuple(np.shape(a))} and {tuple(np.shape(b))}")


def nearest_neighbours(samples, train, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The closest training image of each sample, in root-mean-square pixel distance.

    d(s, x) = sqrt(mean_pixels (s - x)^2) = ||s - x||_2 / sqrt(D); for each sample the
    index and distance of argmin_n d(s, train[n]) (the first index on ties). ``train`` is
    scanned in batches of ``batch_size`` rows (squared distances by the expansion
    |s|^2 + |x|^2 - 2 <s, x> in float64), so the memory is O(S * batch_size) besides the
    inputs; the returned distances are recomputed directly, so an exact copy has 0.

    Args: ``samples: [S, *event]``, ``train: [N, *event]`` (same event shape, finite),
      ``batch_size`` >= 1.
    Returns: ``(index, distance)``: int ``[S]`` in [0, N) and float64 ``[S]`` >= 0, in the
      images' units.
    """
    _same_event(samples, train, "samples", "train")
    s, t = _flat(samples, "samples"), _flat(train, "train")
    batch_size = _checks.integer(batch_size, "batch_size", 1)
    s_sq = np.sum(s * s, axis=1)
    best = np.full(s.shape[0], np.inf)
    index = np.zeros(s.shape[0], np.int64)
    rows = np.arange(s.shape[0])
    for start in range(0, t.shape[0], batch_size):
        chunk = t[start:start + batch_size]
        d2 = s_sq[:, None] + np.sum(chunk * chunk, axis=1)[None, :] - 2.0 * s @ chunk.T
        i = np.argmin(d2, axis=1)
        better = d2[rows, i] < best
        best = np.where(better, d2[rows, i], best)
        index = np.where(better, start + i, index)
    distance = np.sqrt(np.mean((s - t[index]) ** 2, axis=1))
    return index, distance


def copy_check(samples, train, reference, batch_size: int = 1000) -> dict[str, float]:
    """Are the samples closer to the training set than unseen images are?

    Nearest-training distances (:func:`nearest_neighbours`) of the model's ``samples`` and
    of ``reference`` images, held-out test images of the same distribution, which are
    certainly not copies of training images.

    How to read it: ``ratio`` = samples' median / reference's median. Near 1 or above, the
    samples are no closer to the training set than new data are (above 1 is usual for
    blurry or imperfect samples); well below 1 (e.g. < 0.5), or a sizeable
    ``closer_than_reference`` fraction, or ``samples_min`` near 0, points to memorised
    training images: look at those samples next to their neighbours.

    Args: ``samples: [S, *event]``, ``train: [N, *event]``, ``reference: [R, *event]``
      (same event shape, same units, e.g. all in [0, 1]), ``batch_size`` for the scan.
    Returns: ``{"samples_median", "reference_median", "ratio", "samples_min",
      "reference_min", "closer_than_reference"}`` as Python floats: medians and minima of
      the RMS distances, ``ratio`` (inf when only reference_median is 0, 1 when both are),
      and the fraction of samples closer to ``train`` than the closest reference image is.
    """
    _same_event(samples, reference, "samples", "reference")
    _, d_samples = nearest_neighbours(samples, train, batch_size)
    _, d_reference = nearest_neighbours(reference, train, batch_size)
    s_med, r_med = float(np.median(d_samples)), float(np.median(d_reference))
    r_min = float(np.min(d_reference))
    if r_med > 0:
        ratio = s_med / r_med
    else:
        ratio = 1.0 if s_med == 0 else float("inf")
    return {"samples_median": s_med, "reference_median": r_med, "ratio": ratio,
            "samples_min": float(np.min(d_samples)), "reference_min": r_min,
            "closer_than_reference": float(np.mean(d_samples < r_min))}
