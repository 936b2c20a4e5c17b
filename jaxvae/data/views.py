"""Identities x viewpoints for conditional generators that receive ``(identity code,
viewpoint)`` and render the image (Dosovitskiy et al., "Learning to generate chairs, tables
and cars with convolutional networks"). :func:`mnist_views` works offline with MNIST digits
as identities (LeCun, Cortes and Burges, CC BY-SA 3.0; the embedded subset, see
``jaxvae/data/README.md``); :func:`tfds_views` reads ``smallnorb`` and ``shapes3d``.

:func:`rotate_scale`: with centre ``(c_r, c_c) = ((H-1)/2, (W-1)/2)``, angle ``t`` (degrees,
counter-clockwise as displayed) and scale ``s``, output pixel ``(r, c)`` is the input at::

    r' = c_r + ( sin t (c - c_c) + cos t (r - c_r)) / s
    c' = c_c + ( cos t (c - c_c) - sin t (r - c_r)) / s

(inverse mapping), bilinear, zero outside; ``t = 90`` is ``np.rot90``. Viewpoint ``v = a *
len(scales) + k`` has features ``(cos t, sin t, log s)``. Defaults: angles -60..60 step 15
x scales (0.8, 1.0): 18 viewpoints, keeping 99.9% of an MNIST digit's ink (x s^2) on average.

Held out: never the canonical viewpoint (least ``|t|``, then ``|log s|``, then index; (0, 1)
by default), so every identity keeps a reference. With the other V - 1 in the order ``p =
default_rng(seed).permutation(V - 1)``, identity ``i`` withholds ``p[(i h + j) mod (V - 1)]``
for ``j < h = held_out_per_identity``: h each, each viewpoint by floor or ceil ``I h / (V -
1)`` identities (5 or 6 of 50 by default), so each is still seen for most identities.
"""

import itertools
from typing import NamedTuple

import numpy as np

from jaxvae.data.errors import DataError, MissingDependencyError
from jaxvae.data.registry import load

__all__ = ["DEFAULT_ANGLES", "DEFAULT_SCALES", "Views", "make_views", "mnist_views",
           "rotate_scale", "tfds_views", "view_pairs", "views_condition"]

DEFAULT_ANGLES = tuple(float(a) for a in range(-60, 61, 15))
DEFAULT_SCALES = (0.8, 1.0)


class Views(NamedTuple):
    """I identities x V viewpoints: ``images float32 [I, V, H, W]`` (or ``[I, V, H, W, C]``)
    in [0, 1]; ``identity int32 [I]``, each identity's source label (digit, category,
    shape); ``viewpoints float32 [V, P]``, the features the generator sees; ``angles
    float32 [V]`` in degrees (rotation, azimuth, orientation); ``scales float32 [V]`` (1 for
    smallnorb); ``held_out bool [I, V]``, True where a pair is withheld from training."""

    images: np.ndarray
    identity: np.ndarray
    viewpoints: np.ndarray
    angles: np.ndarray
    scales: np.ndarray
    held_out: np.ndarray


def rotate_scale(images, angle_deg: float, scale: float) -> np.ndarray:
    """Rotates and scales images about their centre (the equations of the module docstring).

    Args:
      images: ``[N, H, W]`` finite floats; angle_deg: counter-clockwise as displayed;
      scale: the magnification, > 0 (0.5 halves the content).

    Returns:
      ``float32 [N, H, W]``; angle 0 and scale 1 return the images unchanged.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 3 or not len(x) or not np.isfinite(x).all():
        raise DataError(f"images must be finite, of shape [N, H, W] (N >= 1); found shape "
                        f"{x.shape} with {int((~np.isfinite(x)).sum())} non-finite values")
    if not (np.isfinite(angle_deg) and np.isfinite(scale) and scale > 0):
        raise DataError(f"need a finite angle and a finite scale > 0; got {angle_deg}, {scale}")
    (_, h, w), t = x.shape, np.deg2rad(float(angle_deg))
    cos, sin = np.round([np.cos(t), np.sin(t)], 12)   # exact at multiples of 90 degrees
    dr, dc = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
    # Bilinear on the image padded by a ring of zeros (hence + 1); beyond it reads zeros.
    rows = np.clip((h - 1) / 2 + (sin * dc + cos * dr) / scale, -1, h) + 1
    cols = np.clip((w - 1) / 2 + (cos * dc - sin * dr) / scale, -1, w) + 1
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    r0, c0 = (np.minimum(np.floor(a).astype(np.intp), n) for a, n in ((rows, h), (cols, w)))
    fr, fc = rows - r0, cols - c0
    out = (pad[:, r0, c0] * ((1 - fr) * (1 - fc)) + pad[:, r0 + 1, c0] * (fr * (1 - fc))
           + pad[:, r0, c0 + 1] * ((1 - fr) * fc) + pad[:, r0 + 1, c0 + 1] * (fr * fc))
    return out.astype(np.float32)


def _rotation_geometry(angles, scales):
    """``(angles, scales, features [V, 3] = (cos t, sin t, log s))``."""
    t = np.deg2rad(angles)
    return angles, scales, np.stack([np.cos(t), np.sin(t), np.log(scales)], axis=1)


def _check_int(value, low: int, high: int, what: str) -> None:
    if type(value) is bool or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise DataError(f"{what} must be an integer in [{low}, {high}]; got {value!r}")


def _assemble(images, identity, angles, scales, features, h, seed) -> Views:
    num, v = images.shape[:2]
    canonical = np.lexsort((np.arange(v), np.abs(np.log(scales)), np.abs(angles)))[0]
    others = np.delete(np.arange(v), canonical)[np.random.default_rng(seed).permutation(v - 1)]
    held_out = np.zeros((num, v), bool)
    pos = (np.arange(num)[:, None] * h + np.arange(h)) % max(v - 1, 1)
    held_out[np.arange(num)[:, None], others[pos]] = True
    return Views(images.astype(np.float32), np.asarray(identity, np.int32),
                 *(np.asarray(a, np.float32) for a in (features, angles, scales)), held_out)


def make_views(images, labels=None, angles=DEFAULT_ANGLES, scales=DEFAULT_SCALES,
               held_out_per_identity: int = 2, seed: int = 0) -> Views:
    """Every image (an identity) under every viewpoint, the product of angles and scales.

    Args:
      images: ``[I, H, W]`` in [0, 1]; labels: ``[I]`` integers, or None for ``0..I-1``.
      angles: distinct, in degrees; scales: distinct, > 0.
      held_out_per_identity, seed: the held-out rule (h in [0, V - 1]).

    Returns:
      :class:`Views`, ``images [I, V, H, W]`` with V = len(angles) * len(scales), viewpoint
      ``v = a * len(scales) + k`` and ``viewpoints [V, 3] = (cos t, sin t, log s)``.
    """
    a, s = np.asarray(angles, np.float64), np.asarray(scales, np.float64)
    for what, v in (("angles", a), ("scales (> 0)", s)):
        if v.ndim != 1 or not v.size or not np.isfinite(v).all() or len(np.unique(v)) < v.size \
                or (v is s and (v <= 0).any()):
            raise DataError(f"{what} must be a non-empty 1-D sequence of distinct numbers; got {v}")
    grid_a, grid_s = np.repeat(a, len(s)), np.tile(s, len(a))
    _check_int(held_out_per_identity, 0, len(grid_a) - 1, "held_out_per_identity (V - 1 max)")
    x = np.asarray(images)
    out = np.stack([rotate_scale(x, t, k) for t, k in zip(grid_a, grid_s)], axis=1)
    if x.min() < 0 or x.max() > 1:   # after rotate_scale has checked the shape
        raise DataError(f"images must lie in [0, 1]; found [{x.min()}, {x.max()}]")
    ident = np.arange(len(x)) if labels is None else np.asarray(labels)
    if ident.shape != (len(x),) or ident.dtype.kind not in "iu":
        raise DataError(f"labels must be integers of shape [{len(x)}]; found {ident.dtype} "
                        f"{ident.shape}")
    return _assemble(out, ident, *_rotation_geometry(grid_a, grid_s), held_out_per_identity,
                     seed)


def view_pairs(views: Views, held_out: bool):
    """The seen (``held_out=False``) or withheld (True) pairs, flattened in (i, v) order.

    Args:
      views: a :class:`Views`; held_out: which pairs.

    Returns:
      ``(x [M, H, W(, C)], identity_index int32 [M], view_index int32 [M])``.
    """
    i, v = np.nonzero(views.held_out if held_out else ~views.held_out)
    return views.images[i, v], i.astype(np.int32), v.astype(np.int32)


def views_condition(views: Views, identity_index, view_index) -> np.ndarray:
    """The generator's condition: the one-hot identity, then the viewpoint features.

    Args:
      views: a :class:`Views` with I identities and P viewpoint features.
      identity_index: ``[M]`` integers in [0, I); view_index: ``[M]`` integers in [0, V).

    Returns:
      ``float32 [M, I + P]``: ``concat(one_hot(identity_index, I), viewpoints[view_index])``.
    """
    i, v = np.asarray(identity_index), np.asarray(view_index)
    num, nv = views.held_out.shape
    for name, idx, n in (("identity_index", i, num), ("view_index", v, nv)):
        if idx.shape != i.shape or idx.ndim != 1 or idx.dtype.kind not in "iu" \
                or (idx.size and (idx.min() < 0 or idx.max() >= n)):
            raise DataError(f"{name} must be 1-D integers in [0, {n}), as long as "
                            f"identity_index {i.shape}; got {idx.dtype} {idx.shape}")
    return np.concatenate([np.eye(num, dtype=np.float32)[i], views.viewpoints[v]], axis=1)


def _first_per_class(labels: np.ndarray, k: int) -> np.ndarray:
    """The first k indices round-robin over the classes: the first of each, the second..."""
    order = np.argsort(labels, kind="stable")
    rank = np.empty(len(labels), np.int64)
    rank[order] = np.arange(len(labels)) - np.searchsorted(labels[order], labels[order])
    return np.lexsort((labels, rank))[:k]


def mnist_views(num_identities: int = 50, split: str = "train", data: str = "embedded",
                per_class: bool = True, **kwargs) -> Views:
    """Identities x viewpoints of MNIST digits (offline with the default ``"embedded"``).

    Args:
      num_identities: I; split, data: for :func:`jaxvae.data.load` (grey ``[N, H, W]``).
      per_class: round-robin over the classes (the first image of each digit 0..9, then
        the second of each, ...: ``identity[i] == i % 10``); otherwise the first I images.
      **kwargs: ``angles``, ``scales``, ``held_out_per_identity``, ``seed``.

    Returns:
      :class:`Views`, ``images float32 [I, V, 28, 28]`` (V = 18 by default).
    """
    ds = load(data, split)
    _check_int(num_identities, 1, ds.num_examples, f"num_identities (split {split!r})")
    if per_class and ds.labels is None:
        raise DataError(f"per_class=True needs labels, and {data!r} has none")
    index = _first_per_class(ds.labels, num_identities) if per_class else range(num_identities)
    labels = None if ds.labels is None else ds.labels[index]
    return make_views(ds.images[index], labels, **kwargs)


def _smallnorb_geometry(labels):   # azimuth 0..340 -> [-180, 180), elevation 30..70 -> [-1, 1]
    az = (20.0 * labels[:, 0] + 180) % 360 - 180
    angles, scales, f = _rotation_geometry(az, np.ones(len(labels)))
    f[:, 2] = (30.0 + 5 * labels[:, 1] - 50) / 20
    return angles, scales, np.concatenate([f, np.eye(6)[labels[:, 2]]], axis=1)


# name -> (identity features, the first one its label; view features; their label counts;
# default labels; image shape; default side; view labels [V, F] -> (angles, scales, [V, P])).
_TFDS_VIEWS = {
    "smallnorb": (("label_category", "instance"),
                  ("label_azimuth", "label_elevation", "label_lighting"), (18, 9, 6),
                  {"label_lighting": (0,)}, (96, 96, 1), 32, _smallnorb_geometry),
    "shapes3d": (("label_shape", "label_object_hue", "label_floor_hue", "label_wall_hue"),
                 ("label_orientation", "label_scale"), (15, 8), {}, (64, 64, 3), 64,
                 lambda lab: _rotation_geometry(-30 + 60 * lab[:, 0] / 14, 0.75 + lab[:, 1] / 14)),
}


def tfds_views(name: str, split: str = "train", num_identities: int | None = None, *,
               view_labels: dict | None = None, size: int | None = None,
               held_out_per_identity: int = 2, seed: int = 0) -> Views:
    """Identities x viewpoints of ``smallnorb`` or ``shapes3d``, via ``tfds.data_source``.

    smallnorb: identity (``label_category``, ``instance``), 25 a split; viewpoint
    (``label_azimuth`` a: 20 a degrees; ``label_elevation`` e: 30 + 5 e degrees;
    ``label_lighting``: 0 by default), V = 162, features ``(cos, sin, (elevation - 50) / 20,
    one_hot(lighting, 6))``; ``image`` 96 x 96 to 32 x 32 (3 x 3 block means). shapes3d:
    identity (``label_shape``, ``label_object_hue``, ``label_floor_hue``, ``label_wall_hue``),
    4000; viewpoint (``label_orientation`` o: ``-30 + 60 o / 14`` degrees; ``label_scale``
    k: ``0.75 + k / 14``), V = 120, features ``(cos, sin, log scale)``; 64 x 64 x 3 (24 GB
    in all). ``Views.identity`` is the first identity feature. The labels of all examples
    are read, then the kept images; identities with every viewpoint are kept (a pair's
    first example), sorted, taken round-robin over ``Views.identity``.

    Args:
      name: ``"smallnorb"`` or ``"shapes3d"`` (``"tfds:"``, ``":VERSION"`` allowed); split:
        a TFDS split; num_identities: I, or None for every complete identity.
      view_labels: view feature -> the labels kept (the product is the viewpoint grid),
        e.g. ``{"label_lighting": (0, 3)}``; size: the output side, dividing the stored one.
      held_out_per_identity, seed: the held-out rule of the module docstring.

    Returns:
      :class:`Views`, ``images float32 [I, V, size, size(, 3)]`` in [0, 1].

    Raises:
      DataError: bad arguments or images, too few complete identities; its subclass
        MissingDependencyError without tensorflow-datasets.
    """
    base = name.removeprefix("tfds:")
    if base.split(":")[0] not in _TFDS_VIEWS:
        raise DataError(f"tfds_views knows {', '.join(_TFDS_VIEWS)}; got {name!r}")
    id_features, view_features, sizes, defaults, shape, side, geometry = \
        _TFDS_VIEWS[base.split(":")[0]]
    chosen = {**defaults, **(view_labels or {})}
    kept = [list(chosen.get(feature, range(n))) for feature, n in zip(view_features, sizes)]
    if set(chosen) - set(view_features) or not all(vals and len(set(vals)) == len(vals) and
                                                   set(vals) <= set(range(n))
                                                   for vals, n in zip(kept, sizes)):
        raise DataError(f"view_labels must map features of {dict(zip(view_features, sizes))} "
                        f"(feature: number of labels) to distinct labels; got {view_labels}")
    grid = np.array(list(itertools.product(*kept)), np.int64)
    code = {tuple(row): v for v, row in enumerate(grid.tolist())}
    _check_int(held_out_per_identity, 0, len(grid) - 1, "held_out_per_identity (V - 1 max)")
    size = side if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or shape[0] % size:
        raise DataError(f"size must be a divisor of {shape[0]}; got {size!r}")
    try:
        import tensorflow_datasets as tfds  # noqa: PLC0415 (optional dependency)
    except ImportError as err:
        raise MissingDependencyError(
            f"tfds_views needs tensorflow-datasets: pip install 'jaxvae[tfds]' ({err})") from err
    origin = f"TFDS data set {base!r} (split {split!r})"
    try:
        source = tfds.data_source(base, split=split)
    except ValueError as err:
        raise DataError(f"cannot load {origin}: {err}") from err
    table: dict[tuple, dict[int, int]] = {}   # identity -> {viewpoint: example index}
    for k in range(len(source)):
        ex = source[k]
        v = code.get(tuple(int(ex[f]) for f in view_features))
        if v is not None:
            table.setdefault(tuple(int(ex[f]) for f in id_features), {}).setdefault(v, k)
    complete = sorted(key for key, seen in table.items() if len(seen) == len(grid))
    if not complete:
        raise DataError(f"no identity of {origin} has all {len(grid)} viewpoints ({len(table)} "
                        f"have some, in {len(source)} examples); keep fewer view_labels")
    num_identities = len(complete) if num_identities is None else num_identities
    _check_int(num_identities, 1, len(complete), f"num_identities (complete in {origin})")
    chosen_ids = np.sort(_first_per_class(np.array([key[0] for key in complete]), num_identities))
    keys = [complete[j] for j in chosen_ids]
    f, channels = shape[0] // size, shape[-1]
    images = np.empty((len(keys), len(grid), size, size, channels), np.float32)
    for i, key in enumerate(keys):
        for v, k in table[key].items():
            image = np.asarray(source[k]["image"], np.uint8)   # uint8 [*shape] in TFDS
            images[i, v] = image.reshape(size, f, size, f, channels).mean(axis=(1, 3)) / 255
    angles, scales, features = geometry(grid)
    return _assemble(images[..., 0] if channels == 1 else images, [key[0] for key in keys],
                     angles, scales, features, held_out_per_identity, seed)
