"""Tests for jaxvae.data.views: identities x viewpoints for conditional generators.

rotate_scale is checked against exact properties (identity, np.rot90, composition, mass);
make_views and mnist_views on tiny inputs and the embedded MNIST subset; tfds_views runs
offline under ``tfds.testing.mock_data`` and is skipped without tensorflow-datasets.
"""

import sys

import numpy as np
import pytest

from jaxvae.data import (
    DEFAULT_ANGLES,
    DEFAULT_SCALES,
    DataError,
    MissingDependencyError,
    Views,
    load,
    make_views,
    mnist_views,
    rotate_scale,
    tfds_views,
    view_pairs,
    views_condition,
)


def blob(n, cy, cx, sigma):
    """A Gaussian blob [1, n, n] with peak 1 at (cy, cx)."""
    r, c = np.mgrid[:n, :n]
    return np.exp(-((r - cy) ** 2 + (c - cx) ** 2) / (2 * sigma ** 2))[None].astype(np.float32)


def smooth_images(num, size=9, seed=0):
    """``num`` blobs [num, size, size] in [0, 1] at random places near the centre."""
    rng = np.random.default_rng(seed)
    centres = (size - 1) / 2 + rng.uniform(-1.5, 1.5, size=(num, 2))
    return np.concatenate([blob(size, cy, cx, 1.5) for cy, cx in centres])


# ----------------------------------------------------------------------- rotate_scale


def test_rotate_scale_identity_is_exact():
    x = np.random.default_rng(0).random((3, 6, 7)).astype(np.float32)
    out = rotate_scale(x, 0.0, 1.0)
    assert out.dtype == np.float32 and out.shape == (3, 6, 7)
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("n", [5, 6])
def test_rotate_scale_multiples_of_90_are_np_rot90(n):
    x = np.random.default_rng(n).random((2, n, n)).astype(np.float32)
    for k in (1, 2, 3, -1):
        np.testing.assert_allclose(rotate_scale(x, 90.0 * k, 1.0), np.rot90(x, k, axes=(1, 2)),
                                   atol=1e-6)


def test_rotate_scale_turns_counter_clockwise_as_displayed():
    # A dot right of the centre moves above it (smaller row) under +90 degrees.
    x = np.zeros((1, 9, 9), np.float32)
    x[0, 4, 7] = 1.0
    out = rotate_scale(x, 90.0, 1.0)
    assert out[0, 1, 4] == pytest.approx(1.0) and out.sum() == pytest.approx(1.0)


def test_rotate_scale_composes_angles_on_smooth_images():
    x = blob(33, 12, 19, 3.0)
    for a, b in [(20.0, 25.0), (-35.0, 50.0)]:
        twice = rotate_scale(rotate_scale(x, a, 1.0), b, 1.0)
        assert np.abs(twice - rotate_scale(x, a + b, 1.0)).max() < 0.05
        assert np.abs(twice - rotate_scale(x, a - b, 1.0)).max() > 0.5   # the check has teeth


@pytest.mark.parametrize("scale", [0.6, 0.8, 1.25, 1.6])
def test_rotate_scale_mass_scales_by_scale_squared(scale):
    x = blob(41, 20, 20, 3.0)
    for angle in (0.0, 30.0):
        ratio = rotate_scale(x, angle, scale).sum() / x.sum()
        assert ratio == pytest.approx(scale ** 2, rel=0.01)


def test_rotate_scale_is_zero_outside_and_stays_in_unit_interval():
    x = np.ones((1, 8, 8), np.float32)
    out = rotate_scale(x, 45.0, 0.5)
    assert out.min() == 0.0 and out.max() <= 1.0
    assert out[0, 0, 0] == 0.0 and out[0, 3, 3] == pytest.approx(1.0)


@pytest.mark.parametrize("images,angle,scale,match", [
    (np.zeros((4, 4)), 0.0, 1.0, r"finite, of shape \[N, H, W\].*found shape \(4, 4\)"),
    (np.full((1, 3, 3), np.nan), 0.0, 1.0, r"with 9 non-finite values"),
    (np.zeros((1, 3, 3)), 10.0, 0.0, r"finite scale > 0"),
    (np.zeros((1, 3, 3)), np.inf, 1.0, r"finite angle"),
])
def test_rotate_scale_bad_input(images, angle, scale, match):
    with pytest.raises(DataError, match=match):
        rotate_scale(images, angle, scale)


# ------------------------------------------------------------------------ make_views


def test_make_views_shapes_features_and_canonical_view():
    x = smooth_images(4)
    views = make_views(x, labels=np.array([3, 1, 4, 1]))
    v = len(DEFAULT_ANGLES) * len(DEFAULT_SCALES)
    assert isinstance(views, Views) and v == 18
    assert views.images.shape == (4, 18, 9, 9) and views.images.dtype == np.float32
    assert views.identity.tolist() == [3, 1, 4, 1] and views.identity.dtype == np.int32
    assert views.viewpoints.shape == (18, 3) and views.held_out.shape == (4, 18)
    # Viewpoint v = a * len(scales) + k.
    np.testing.assert_allclose(views.angles, np.repeat(DEFAULT_ANGLES, 2))
    np.testing.assert_allclose(views.scales, np.tile(DEFAULT_SCALES, 9))
    t = np.deg2rad(views.angles)
    np.testing.assert_allclose(views.viewpoints, np.stack(
        [np.cos(t), np.sin(t), np.log(views.scales)], 1), atol=1e-6)
    canonical = 4 * 2 + 1   # angle 0, scale 1
    assert views.angles[canonical] == 0 and views.scales[canonical] == 1
    np.testing.assert_array_equal(views.images[:, canonical], x)
    for v_index in (0, 17):
        np.testing.assert_allclose(views.images[:, v_index], rotate_scale(
            x, views.angles[v_index], views.scales[v_index]), atol=1e-6)
    assert make_views(x).identity.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("num,h", [(20, 2), (50, 2), (7, 3), (34, 1)])
def test_held_out_rule(num, h):
    views = make_views(smooth_images(num, size=5), held_out_per_identity=h, seed=3)
    mask, v = views.held_out, 18
    canonical = 9
    assert (mask.sum(axis=1) == h).all()            # exactly h per identity
    assert not mask[:, canonical].any()             # every identity keeps its reference
    withheld = np.delete(mask.sum(axis=0), canonical)
    low, high = np.floor(num * h / (v - 1)), np.ceil(num * h / (v - 1))
    assert ((withheld >= low) & (withheld <= high)).all()   # balanced over viewpoints
    assert ((num - mask.sum(axis=0)) >= num / 2).all()       # each seen by at least half


def test_held_out_is_deterministic_by_seed_and_extremes():
    x = smooth_images(10, size=5)
    a, b = make_views(x, seed=1), make_views(x, seed=1)
    np.testing.assert_array_equal(a.held_out, b.held_out)
    np.testing.assert_array_equal(a.images, b.images)
    assert any(not np.array_equal(a.held_out, make_views(x, seed=s).held_out)
               for s in range(2, 5))
    assert not make_views(x, held_out_per_identity=0).held_out.any()
    full = make_views(x, held_out_per_identity=17).held_out
    assert (full.sum(axis=1) == 17).all() and not full[:, 9].any()
    one = make_views(x, angles=(10.0,), scales=(1.0,), held_out_per_identity=0)
    assert one.images.shape == (10, 1, 5, 5) and not one.held_out.any()


def test_canonical_view_without_angle_zero_or_scale_one():
    # No (0, 1) viewpoint: the canonical one is the least |angle|, then the least |log s|.
    views = make_views(smooth_images(12, size=5), angles=(-20.0, 10.0, 30.0),
                       scales=(0.5, 1.5, 0.9), held_out_per_identity=4)
    assert not views.held_out[:, 1 * 3 + 2].any()   # angle 10, scale 0.9
    assert (views.held_out.sum(axis=1) == 4).all()


@pytest.mark.parametrize("kwargs,match", [
    (dict(images=np.zeros((4, 4))), r"of shape \[N, H, W\] \(N >= 1\); found shape \(4, 4\)"),
    (dict(images=np.zeros((0, 4, 4))), r"found shape \(0, 4, 4\)"),
    (dict(images=np.full((2, 4, 4), np.nan)), r"32 non-finite values"),
    (dict(images=np.full((2, 4, 4), 2.0)), r"must lie in \[0, 1\]"),
    (dict(labels=np.zeros(3, int)), r"labels must be integers of shape \[2\]"),
    (dict(labels=np.zeros(2)), r"labels must be integers"),
    (dict(held_out_per_identity=18), r"held_out_per_identity .* in \[0, 17\]; got 18"),
    (dict(held_out_per_identity=-1), r"held_out_per_identity"),
    (dict(held_out_per_identity=True), r"held_out_per_identity"),
    (dict(angles=(0.0, 0.0)), r"angles must be a non-empty 1-D sequence of distinct"),
    (dict(angles=()), r"angles must"),
    (dict(scales=(1.0, -0.5)), r"scales \(> 0\) must"),
])
def test_make_views_bad_input(kwargs, match):
    args = dict(images=np.zeros((2, 4, 4)))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_views(**args)


# ---------------------------------------------------------- view_pairs, conditions


def test_view_pairs_split_every_pair_once():
    views = make_views(smooth_images(6, size=5), held_out_per_identity=3)
    seen, held = view_pairs(views, held_out=False), view_pairs(views, held_out=True)
    assert len(seen[0]) + len(held[0]) == 6 * 18 and len(held[0]) == 6 * 3
    for x, i, v in (seen, held):
        assert x.shape[1:] == (5, 5) and i.dtype == v.dtype == np.int32
        np.testing.assert_array_equal(x, views.images[i, v])
    assert views.held_out[held[1], held[2]].all() and not views.held_out[seen[1], seen[2]].any()
    pairs = set(zip(seen[1].tolist(), seen[2].tolist())) | set(zip(held[1].tolist(),
                                                                  held[2].tolist()))
    assert len(pairs) == 6 * 18


def test_views_condition_is_one_hot_identity_then_viewpoint():
    views = make_views(smooth_images(5, size=5))
    _, i, v = view_pairs(views, held_out=False)
    cond = views_condition(views, i, v)
    assert cond.shape == (len(i), 5 + 3) and cond.dtype == np.float32
    np.testing.assert_array_equal(cond[:, :5], np.eye(5)[i])
    np.testing.assert_array_equal(cond[:, 5:], views.viewpoints[v])
    assert views_condition(views, np.array([], int), np.array([], int)).shape == (0, 8)
    for bad_i, bad_v in [([5], [0]), ([0], [18]), ([-1], [0]), ([0, 1], [0]), ([0.0], [0])]:
        with pytest.raises(DataError, match=r"must be 1-D integers"):
            views_condition(views, np.array(bad_i), np.array(bad_v))


# ----------------------------------------------------------------------- mnist_views


def test_mnist_views_on_the_embedded_data():
    views = mnist_views(num_identities=20)
    assert views.images.shape == (20, 18, 28, 28)
    assert views.identity.tolist() == [i % 10 for i in range(20)]
    ds = load("embedded", "train")
    first = [np.flatnonzero(ds.labels == c)[:2] for c in range(10)]
    expected = [first[c][r] for r in range(2) for c in range(10)]
    np.testing.assert_array_equal(views.images[:, 9], ds.images[expected])   # canonical
    assert 0.0 <= views.images.min() and views.images.max() <= 1.0
    assert (views.held_out.sum(axis=1) == 2).all()
    plain = mnist_views(num_identities=3, per_class=False, angles=(0.0, 45.0), scales=(1.0,),
                        held_out_per_identity=1, seed=5, split="test")
    test = load("embedded", "test")
    np.testing.assert_array_equal(plain.images[:, 0], test.images[:3])
    assert plain.identity.tolist() == test.labels[:3].tolist()
    assert plain.held_out[:, 1].all() and not plain.held_out[:, 0].any()


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_identities=0), r"num_identities .* in \[1, 10000\]; got 0"),
    (dict(num_identities=10_001), r"in \[1, 10000\]; got 10001"),
    (dict(num_identities=2.5), r"num_identities"),
    (dict(num_identities=2, held_out_per_identity=18), r"held_out_per_identity"),
    (dict(data="no-such-set"), r"unknown data set name"),
])
def test_mnist_views_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mnist_views(**kwargs)


# ------------------------------------------------------------------------ tfds_views


def test_tfds_views_refuses_bad_arguments_before_reading():
    with pytest.raises(DataError, match=r"tfds_views knows smallnorb, shapes3d; got 'mnist'"):
        tfds_views("mnist")
    bad = r"view_labels must map features of \{'label_azimuth': 18, 'label_elevation': 9, "
    for labels in [{"label_category": (0,)}, {"label_azimuth": (0, 18)},
                   {"label_elevation": ()}]:
        with pytest.raises(DataError, match=bad + r".*to distinct labels; got \{'label_"):
            tfds_views("smallnorb", view_labels=labels)
    with pytest.raises(DataError, match=r"view_labels must map .*'label_scale': 8\}"):
        tfds_views("shapes3d", view_labels={"label_scale": (1, 1)})
    with pytest.raises(DataError, match=r"size must be a divisor of 96; got 40"):
        tfds_views("smallnorb", size=40)
    with pytest.raises(DataError, match=r"held_out_per_identity .* in \[0, 0\]"):
        tfds_views("shapes3d", view_labels={"label_orientation": (7,), "label_scale": (3,)})


def test_tfds_views_without_tensorflow_datasets(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(MissingDependencyError, match=r"needs tensorflow-datasets: pip install"):
        tfds_views("tfds:smallnorb")


@pytest.fixture
def tfds():
    return pytest.importorskip("tensorflow_datasets")


def fake_source(examples):
    """as_data_source_fn for mock_data: the given examples for every split."""

    def as_data_source(self, split, decoders=None, deserialize_method=None):
        return examples

    return as_data_source


def pooled(image, f):
    """uint8 [H, W, C] -> float32 block means of f x f over 255."""
    h, w, c = image.shape
    return image.reshape(h // f, f, w // f, f, c).mean(axis=(1, 3)) / 255


def test_tfds_views_smallnorb_grid_keeps_complete_identities(tfds):
    rng = np.random.default_rng(0)
    grid = [(a, e) for a in (0, 1, 17) for e in (0, 8)]       # V = 6 at lighting 0
    examples = []

    def add(category, instance, azimuth, elevation, lighting=0):
        examples.append({"image": rng.integers(0, 256, (96, 96, 1), dtype=np.uint8),
                         "image2": np.zeros((96, 96, 1), np.uint8),
                         "label_category": category, "instance": instance,
                         "label_azimuth": azimuth, "label_elevation": elevation,
                         "label_lighting": lighting})

    for category, instance in [(2, 7), (0, 4), (1, 6)]:
        for azimuth, elevation in grid:
            add(category, instance, azimuth, elevation)
    for azimuth, elevation in grid[:-1]:
        add(3, 8, azimuth, elevation)                        # one viewpoint missing
    add(3, 8, 17, 8, lighting=1)                             # another lighting: ignored
    add(0, 4, 5, 3)                                          # outside the grid: ignored
    add(0, 4, 0, 0)                                          # a repeat: the first is kept
    order = rng.permutation(len(examples))
    shuffled = [examples[k] for k in order]
    with tfds.testing.mock_data(as_data_source_fn=fake_source(shuffled)):
        views = tfds_views("smallnorb", "test",
                           view_labels={"label_azimuth": (0, 1, 17), "label_elevation": (0, 8)})
        two = tfds_views("smallnorb", num_identities=2, held_out_per_identity=1,
                         view_labels={"label_azimuth": (0, 1, 17), "label_elevation": (0, 8)})
        with pytest.raises(DataError, match=r"num_identities .* in \[1, 3\]; got 4"):
            tfds_views("smallnorb", num_identities=4,
                       view_labels={"label_azimuth": (0, 1, 17), "label_elevation": (0, 8)})
    assert views.images.shape == (3, 6, 32, 32) and views.images.dtype == np.float32
    assert views.identity.tolist() == [0, 1, 2]              # sorted (category, instance)
    np.testing.assert_allclose(views.angles, [0, 0, 20, 20, -20, -20])
    np.testing.assert_array_equal(views.scales, np.ones(6))
    assert views.viewpoints.shape == (6, 9)
    t = np.deg2rad(views.angles)
    np.testing.assert_allclose(views.viewpoints[:, :2], np.stack([np.cos(t), np.sin(t)], 1),
                               atol=1e-6)
    np.testing.assert_allclose(views.viewpoints[:, 2], [-1, 1] * 3)   # 30 and 70 degrees
    np.testing.assert_array_equal(views.viewpoints[:, 3:], np.eye(6)[[0] * 6])
    # Identity (1, 6), viewpoint (azimuth 17, elevation 8): its first example, pooled.
    source = next(ex for ex in shuffled if (ex["label_category"], ex["instance"],
                                            ex["label_azimuth"], ex["label_elevation"],
                                            ex["label_lighting"]) == (1, 6, 17, 8, 0))
    np.testing.assert_allclose(views.images[1, 5], pooled(source["image"], 3)[..., 0],
                               rtol=1e-6)
    first = next(ex for ex in shuffled if (ex["label_category"], ex["instance"],
                                           ex["label_azimuth"], ex["label_elevation"]) ==
                 (0, 4, 0, 0))
    np.testing.assert_allclose(views.images[0, 0], pooled(first["image"], 3)[..., 0], rtol=1e-6)
    assert (views.held_out.sum(axis=1) == 2).all() and not views.held_out[:, 0].any()
    assert two.identity.tolist() == [0, 1] and two.images.shape == (2, 6, 32, 32)
    np.testing.assert_array_equal(two.images, views.images[:2])


def test_tfds_views_shapes3d_colour_grid(tfds):
    rng = np.random.default_rng(1)
    names = ("label_shape", "label_object_hue", "label_floor_hue", "label_wall_hue")
    examples = []
    for identity, views_of in [((1, 2, 3, 4), 6), ((0, 9, 0, 0), 6), ((3, 0, 0, 0), 5)]:
        for o, s in [(6, 3), (6, 4), (7, 3), (7, 4), (8, 3), (8, 4)][:views_of]:
            example = dict(zip(names, identity), label_orientation=o, label_scale=s,
                           image=rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
            examples.append(example)
    with tfds.testing.mock_data(as_data_source_fn=fake_source(examples)):
        views = tfds_views("shapes3d", size=32, seed=2, view_labels={
            "label_orientation": (6, 7, 8), "label_scale": (3, 4)})
    assert views.images.shape == (2, 6, 32, 32, 3) and views.identity.tolist() == [0, 1]
    np.testing.assert_allclose(views.angles, np.repeat([-30 + 60 * o / 14 for o in (6, 7, 8)],
                                                       2), atol=1e-5)
    np.testing.assert_allclose(views.scales, [0.75 + 0.5 * 3 / 7, 0.75 + 0.5 * 4 / 7] * 3)
    np.testing.assert_allclose(views.viewpoints[:, 2], np.log(views.scales), atol=1e-6)
    # Identity (1, 2, 3, 4) is the second in sorted order; viewpoint (8, 4) is the last.
    np.testing.assert_allclose(views.images[1, 5], pooled(examples[5]["image"], 2), rtol=1e-6)
    # Canonical: orientation 0 degrees (label 7), then |log scale|: scale label 4.
    assert not views.held_out[:, 3].any() and (views.held_out.sum(axis=1) == 2).all()


@pytest.mark.parametrize("name,views", [("smallnorb", 162), ("shapes3d", 120)])
def test_tfds_views_random_mock_labels_form_no_full_grid(tfds, name, views):
    # The default mock draws every label at random: no identity has all the viewpoints.
    with tfds.testing.mock_data(num_examples=20):
        with pytest.raises(DataError, match=rf"no identity of TFDS data set '{name}' \(split "
                                            rf"'train'\) has all {views} viewpoints \(\d+ have "
                                            r"some, in 20 examples\); keep fewer view_labels"):
            tfds_views(name)


@pytest.mark.parametrize("name,side,size", [("smallnorb", 96, 32), ("shapes3d", 64, 16)])
def test_tfds_views_one_viewpoint_of_the_default_mock(tfds, name, side, size):
    # A grid of one viewpoint, the first mock example's: that example's identity is complete.
    with tfds.testing.mock_data(num_examples=8):
        first = tfds.data_source(name, split="train")[0]
        features = ({"label_azimuth", "label_elevation", "label_lighting"}
                    if name == "smallnorb" else {"label_orientation", "label_scale"})
        labels = {f: (int(first[f]),) for f in features}
        views = tfds_views(name, view_labels=labels, size=size, held_out_per_identity=0)
    assert views.images.shape[1:3] == (1, size) and views.held_out.shape[1] == 1
    key = "label_category" if name == "smallnorb" else "label_shape"
    assert int(first[key]) in views.identity.tolist()
    expected = pooled(np.asarray(first["image"]), side // size)
    assert any(np.allclose(img, expected[..., 0] if name == "smallnorb" else expected,
                           rtol=1e-6) for img in views.images[:, 0])
