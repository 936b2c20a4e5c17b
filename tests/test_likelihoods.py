import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvae import likelihoods

KEY = jax.random.PRNGKey(0)


def test_bernoulli_log_prob_matches_formula_and_is_stable():
    logits = jnp.array([[-100.0, -3.0], [0.0, 100.0]])
    x = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    dist = likelihoods.Bernoulli()(logits)
    assert dist.event_shape == (2, 2)
    # log p = x * l - softplus(l), exact even where sigmoid(l) rounds to 0 or 1
    expected = jnp.sum(x * logits - jax.nn.softplus(logits))
    np.testing.assert_allclose(dist.log_prob(x), expected, rtol=1e-6)
    assert np.isclose(float(dist.log_prob(x)), -200.0 - np.log1p(np.exp(-3.0)) - np.log(2.0),
                      rtol=1e-6)


def test_fused_bernoulli_equals_distrax():
    logits = jax.random.normal(KEY, (3, 50)) * 8
    x = jax.random.uniform(jax.random.PRNGKey(1), (3, 50))      # [0, 1], not only binary
    import distrax
    ours = likelihoods.BernoulliLogits(logits, 1)
    reference = distrax.Independent(distrax.Bernoulli(logits=logits), 1)
    np.testing.assert_allclose(ours.log_prob(x), reference.log_prob(x), rtol=1e-5, atol=1e-4)
    grad = jax.grad(lambda l: likelihoods.BernoulliLogits(l, 1).log_prob(x).sum())(logits)
    np.testing.assert_allclose(grad, x - jax.nn.sigmoid(logits), rtol=1e-5, atol=1e-6)
    grad_x = jax.grad(lambda v: likelihoods.BernoulliLogits(logits, 1).log_prob(v).sum())(x)
    np.testing.assert_allclose(grad_x, logits, rtol=1e-6)
    # a [28, 28]-style event, broadcast against a batch of logits
    lg = jax.random.normal(KEY, (5, 4, 6))
    xi = (jax.random.uniform(KEY, (4, 6)) > 0.5).astype(jnp.float32)
    np.testing.assert_allclose(likelihoods.BernoulliLogits(lg, 2).log_prob(xi),
                               distrax.Independent(distrax.Bernoulli(logits=lg), 2).log_prob(xi),
                               rtol=1e-5)


def test_fixed_gaussian_is_l2_distortion():
    head = likelihoods.Gaussian(scale=0.5)
    mean = jax.random.normal(KEY, (4, 3))
    x = jnp.ones((4, 3))
    dist = head(mean)
    expected = -jnp.sum((x - mean) ** 2) / (2 * 0.25) - 12 * np.log(0.5 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(dist.log_prob(x), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="scale must be positive"):
        likelihoods.Gaussian(scale=0.0)


def test_learned_gaussian_uses_softplus_scale():
    head = likelihoods.LearnedGaussian()
    assert head.raw_shape((5,)) == (5, 2)
    raw = jnp.stack([jnp.zeros(5), jnp.linspace(-3, 3, 5)], axis=-1)
    dist = head(raw)
    scale = jax.nn.softplus(raw[:, 1])
    x = jnp.full(5, 0.3)
    expected = jnp.sum(-0.5 * (x / scale) ** 2 - jnp.log(scale) - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(dist.log_prob(x), expected, rtol=1e-5)


def test_categorical_head():
    head = likelihoods.Categorical(num_classes=7)
    assert head.raw_shape((4,)) == (4, 7)
    logits = jax.random.normal(KEY, (4, 7))
    tokens = jnp.array([0, 6, 3, 3])
    dist = head(logits)
    assert dist.event_shape == (4,)
    expected = jnp.sum(jax.nn.log_softmax(logits)[jnp.arange(4), tokens])
    np.testing.assert_allclose(dist.log_prob(tokens), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="num_classes"):
        likelihoods.Categorical(num_classes=1)


def test_get_head():
    assert likelihoods.get_head("gaussian", scale=2.0) == likelihoods.Gaussian(2.0)
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        likelihoods.get_head("poisson")


# ---------------------------------------------------------------------------------------
# The family of image heads: support, normalization, closed forms, free parameters.
# Computations run under jit (one compilation each) with numpy inputs: eager JAX compiles
# every small op, which dominates on a shared CPU. Closed-over numpy data are concrete,
# so check_support still runs at trace time.

import math  # noqa: E402

import flax.linen as nn  # noqa: E402

import jaxvae  # noqa: E402

F32_EPS = float(np.finfo(np.float32).eps)
RNG = np.random.default_rng(0)
FLOOR_8BIT = 0.01 / 255           # the discretized heads' default floor on s
SAMPLE_KEY = jax.random.key(0, impl="rbg")    # compiles ~4x faster than threefry on CPU


def _reference_log_level_prob(x, mu, s, num_bits):
    """log P(x) of the discretized logistic in float64, choosing the tail by sign.

    Bins above the median use the survival function S(t) = 1 - sigmoid(t), bins below
    the CDF F, and a bin holding the median 1 - F(lower) - S(upper).
    """
    top = 2 ** num_bits - 1
    x, mu, s = (np.asarray(v, np.float64) for v in np.broadcast_arrays(x, mu, s))
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = np.where(x >= top, np.inf, (x + 0.5 - mu * top) / (s * top))
        lower = np.where(x <= 0, -np.inf, (x - 0.5 - mu * top) / (s * top))
        log_cdf = lambda t: -np.logaddexp(0.0, -t)
        log_sf = lambda t: -np.logaddexp(0.0, t)
        above = log_sf(lower) + np.log(-np.expm1(log_sf(upper) - log_sf(lower)))
        below = log_cdf(upper) + np.log(-np.expm1(log_cdf(lower) - log_cdf(upper)))
        middle = np.log1p(-(np.exp(log_cdf(lower)) + np.exp(log_sf(upper))))
    return np.where(lower >= 0, above, np.where(upper <= 0, below, middle))


def _softplus(v):
    return np.logaddexp(0.0, np.float64(v))


def test_reference_is_the_plain_formula_where_that_is_accurate():
    x, mu = np.array([0, 3, 7, 5]), np.array([0.2, 0.4, 0.9, 0.5])
    s = np.array([0.3, 0.1, 0.2, 1.0])
    c, h = x / 7, 1 / 14
    sig = lambda t: 1 / (1 + np.exp(-t))
    upper = np.where(x == 7, 1.0, sig((c + h - mu) / s))
    lower = np.where(x == 0, 0.0, sig((c - h - mu) / s))
    np.testing.assert_allclose(_reference_log_level_prob(x, mu, s, 3), np.log(upper - lower),
                               rtol=1e-12)


def _grid_raw():
    """(mu, r) over every regime: far below/above the data, on a bin edge, inside a bin;
    scales from the floor (1% of a level) to 1e6 (the data range is 1)."""
    mus = np.array([-1e3, -3.0, 0.0, 0.1, 0.5, 128 / 255, 0.7, 1.0, 4.0, 1e3], np.float32)
    rs = np.array([-60.0, -12.0, -6.0, -2.0, 0.0, 3.0, 30.0, 1e4, 1e6], np.float32)
    mu, r = (v.ravel() for v in np.meshgrid(mus, rs, indexing="ij"))
    return mu, r


def test_discretized_logistic_matches_a_float64_reference_in_every_regime():
    mu, r = _grid_raw()
    head = likelihoods.DiscretizedLogistic()
    levels = np.array([0, 1, 2, 127, 128, 200, 254, 255], np.int32)
    raw = np.stack([np.repeat(mu, 8), np.repeat(r, 8)], -1)                 # [M, 2]
    x = np.tile(levels, len(mu))
    log_p = lambda r_: head(r_, event_ndims=0).log_prob(x)
    ours, grad = jax.jit(lambda r_: (log_p(r_), jax.grad(lambda q: log_p(q).sum())(r_)))(raw)
    ours = np.float64(ours)
    s = np.float32(_softplus(raw[:, 1]) + FLOOR_8BIT)                     # as the head has it
    ref = _reference_log_level_prob(x, raw[:, 0], s, 8)
    assert np.all(np.isfinite(ref)) and ref.min() < -1e6      # tails far beyond float32 exp
    # float32 inputs: rounding mu * 255 moves the standardized edges by ~eps |mu| / s
    cond = 4 * F32_EPS * (np.abs(np.float64(raw[:, 0]) * 255) + x + 1) / (np.float64(s) * 255)
    np.testing.assert_array_less(np.abs(ours - ref), 1e-5 * np.abs(ref) + 1e-5 + cond)
    moderate = (np.abs(raw[:, 0]) <= 4) & (s > 1e-3) & (s < 1e5)
    np.testing.assert_allclose(ours[moderate], ref[moderate], rtol=2e-5, atol=2e-5)
    assert np.all(np.isfinite(grad))                          # also at the extremes
    # hand-checked: log P(0 | mu = 0.5) at s = 1/255 is log sigmoid(-127) = -127 - e^-127
    one_level = np.array([[0.5, np.log(np.expm1(1 / 255 - FLOOR_8BIT))]], np.float32)
    np.testing.assert_allclose(jax.jit(lambda r_: head(r_, event_ndims=0).log_prob(
        np.array([0])))(one_level), [-127.0], rtol=1e-6)


@pytest.mark.parametrize("num_bits", [3, 8])
def test_discretized_heads_sum_to_one_over_all_levels(num_bits):
    mu, r = _grid_raw()
    levels = np.arange(2 ** num_bits, dtype=np.int32)[:, None, None]         # [levels, 1, 1]
    single = likelihoods.DiscretizedLogistic(num_bits=num_bits)
    mixture = likelihoods.DiscretizedLogisticMixture(3, num_bits=num_bits)
    raw = np.stack([mu, r], -1)[:, None]                                    # [M, event 1, 2]
    w = RNG.normal(size=(len(mu), 3)) * 5
    raw3 = np.concatenate([w, np.stack([mu, np.roll(mu, 3), np.roll(mu, 7)], -1),
                           np.stack([r, np.roll(r, 5), np.roll(r, 11)], -1)], -1)[:, None]
    lp, lp3 = jax.jit(lambda a, b: (single(a, 1).log_prob(levels),
                                    mixture(b, 1).log_prob(levels)))(raw, raw3.astype(np.float32))
    for log_p in (lp, lp3):                                                 # [levels, M]
        np.testing.assert_allclose(np.exp(np.float64(log_p)).sum(0), 1.0, atol=1e-5)


def test_mixture_with_one_component_equals_the_single_logistic():
    raw = (RNG.normal(size=(4, 3, 2, 2)) * [2.0, 3.0]).astype(np.float32)
    raw3 = np.concatenate([RNG.normal(size=(4, 3, 2, 1)).astype(np.float32), raw], -1)
    x = RNG.integers(0, 256, (4, 3, 2)).astype(np.uint8)

    @jax.jit
    def both(raw, raw3):
        single = likelihoods.DiscretizedLogistic()(raw, event_ndims=2)
        mixture = likelihoods.DiscretizedLogisticMixture(1)(raw3, event_ndims=2)
        return single.log_prob(x), mixture.log_prob(x), single.mean(), mixture.mean()

    lp, lp_mix, mean, mean_mix = both(raw, raw3)
    np.testing.assert_array_equal(lp_mix, lp)
    np.testing.assert_array_equal(mean_mix, mean)
    manual = _reference_log_level_prob(x, raw[..., 0], _softplus(raw[..., 1]) + FLOOR_8BIT, 8)
    np.testing.assert_allclose(lp, manual.sum((1, 2)), rtol=1e-5)
    with pytest.raises(ValueError, match=r"needs raw \[..., 3\]"):
        likelihoods.DiscretizedLogisticMixture(1)(raw)


def test_discretized_mean_is_exact_and_samples_follow_the_probabilities():
    levels = np.arange(8, dtype=np.int32)
    cases = [(likelihoods.DiscretizedLogistic(num_bits=3),
              np.array([[0.4, -1.0], [1.2, -3.0], [-0.1, 0.5]], np.float32)),
             (likelihoods.DiscretizedLogisticMixture(2, num_bits=3),
              np.array([[0.0, 1.0, 0.1, 0.8, -3.0, -2.0], [2.0, -1.0, 0.5, 0.5, 0.0, -9.0],
                        [0.0, 0.0, -0.3, 1.3, -1.0, -1.0]], np.float32))]
    for head, raw in cases:
        @jax.jit
        def summary(raw, head=head):
            dist = head(raw)                                                # event (3,)
            samples = dist.sample(seed=SAMPLE_KEY, sample_shape=(20000,))
            probs = jnp.exp(head(raw, event_ndims=0).log_prob(levels[:, None]))   # [8, 3]
            return dist.mean(), samples, probs

        mean, samples, probs = summary(raw)
        probs = np.float64(probs)
        assert mean.shape == (3,) and mean.dtype == jnp.float32
        np.testing.assert_allclose(mean, (levels[:, None] * probs).sum(0), rtol=1e-5, atol=1e-5)
        assert samples.shape == (20000, 3) and samples.dtype == jnp.int32
        assert int(samples.min()) >= 0 and int(samples.max()) <= 7
        freq = np.stack([(np.asarray(samples) == k).mean(0) for k in levels])
        np.testing.assert_allclose(freq, probs, atol=0.015)
    # the exact mean of an 8-bit level at a scale far below a level: P = 1/2 on 127, 128
    on_edge = jax.jit(lambda r: likelihoods.DiscretizedLogistic()(r).mean())(
        np.array([0.5, -30.0], np.float32))
    np.testing.assert_allclose(on_edge, 127.5, rtol=0, atol=1e-4)


def test_continuous_heads_integrate_to_one():
    mu, num = 0.3, 40001
    heads = [  # (head, raw, param, sigma or b)
        (likelihoods.Gaussian(0.1), [mu], None, 0.1),
        (likelihoods.LearnedGaussian(), [[mu, -1.2]], None, _softplus(-1.2)),
        (likelihoods.LearnedGaussian(0.05, "pixel"), [mu], [-2.0], _softplus(-2.0) + 0.05),
        (likelihoods.LearnedGaussian(sharing="shared"), [mu], 0.4, _softplus(0.4)),
        (likelihoods.Laplace(0.07), [mu], None, 0.07),
    ]
    for head, raw, param, scale in heads:
        grid = np.linspace(mu - 40 * scale, mu + 40 * scale, num)   # mu on the grid
        param = None if param is None else np.asarray(param, np.float32)
        density = jax.jit(lambda x, head=head, raw=raw, param=param: jnp.exp(
            head(jnp.asarray(raw), param=param).log_prob(x)))         # traced x: not checked
        p = np.float64(density(grid[:, None].astype(np.float32)))
        assert head(jnp.asarray(raw), param=param).event_shape == (1,)
        np.testing.assert_allclose(np.trapezoid(p, grid), 1.0, atol=1e-5)
        # the height at the mode pins the normalizer: 1 / (sigma sqrt(2 pi)), 1 / (2 b)
        peak = 1 / (2 * scale) if isinstance(head, likelihoods.Laplace) else \
            1 / (scale * math.sqrt(2 * math.pi))
        np.testing.assert_allclose(p[num // 2], peak, rtol=1e-5)


def test_laplace_is_the_l1_distortion():
    head = likelihoods.Laplace(scale=0.2)
    assert head == likelihoods.Laplace(0.2) and head.raw_shape((4, 3)) == (4, 3)
    assert head.param_shape((4, 3)) is None
    mean = RNG.normal(size=(2, 4, 3)).astype(np.float32)
    x = RNG.uniform(size=(2, 4, 3)).astype(np.float32)
    expected = -(np.abs(x - mean).sum((1, 2)) / 0.2 + 12 * np.log(2 * 0.2))
    np.testing.assert_allclose(jax.jit(lambda m: head(m, event_ndims=2).log_prob(x))(mean),
                               expected, rtol=1e-5)
    with pytest.raises(ValueError, match="Laplace scale must be positive"):
        likelihoods.Laplace(scale=-1.0)


def test_learned_gaussian_sharings_closed_form():
    mean = RNG.uniform(size=(5, 3)).astype(np.float32)
    x = RNG.uniform(size=(5, 3)).astype(np.float32)
    s = np.array([-2.0, 0.0, 3.0], np.float32)

    def normal(sigma):
        return (-0.5 * ((x - mean) / sigma) ** 2 - np.log(sigma)
                - 0.5 * np.log(2 * np.pi)).sum(-1)

    pixel = likelihoods.LearnedGaussian(min_scale=0.01, sharing="pixel")
    shared = likelihoods.LearnedGaussian(sharing="shared")
    output = likelihoods.LearnedGaussian(min_scale=0.01)
    assert pixel.raw_shape((3,)) == (3,) and pixel.param_shape((3,)) == (3,)
    assert shared.raw_shape((3,)) == (3,) and shared.param_shape((3,)) == ()
    assert output.raw_shape((3,)) == (3, 2) and output.param_shape((3,)) is None
    raw = np.stack([mean, np.broadcast_to(s, (5, 3))], -1)
    lp_pixel, lp_shared, lp_output = jax.jit(lambda m, s, raw: (
        pixel(m, 1, param=s).log_prob(x), shared(m, 1, param=s[0] + 0.5).log_prob(x),
        output(raw, 1).log_prob(x)))(mean, s, raw)
    np.testing.assert_allclose(lp_pixel, normal(_softplus(s) + 0.01), rtol=1e-5)
    np.testing.assert_allclose(lp_shared, normal(_softplus(-1.5)), rtol=1e-5)
    np.testing.assert_allclose(lp_output, normal(_softplus(s) + 0.01), rtol=1e-5)
    with pytest.raises(ValueError, match=r"sharing='pixel'\) needs its learned scale.*\(3,\)"):
        pixel(jnp.asarray(mean), 1)
    with pytest.raises(ValueError, match=r"sharing='shared'\) needs.*got \(3,\)"):
        shared(jnp.asarray(mean), 1, param=jnp.asarray(s))
    with pytest.raises(ValueError, match="has no free parameter"):
        output(jnp.asarray(raw), 1, param=jnp.asarray(s))
    with pytest.raises(ValueError, match="sharing must be one of"):
        likelihoods.LearnedGaussian(sharing="channel")


def test_check_support_names_head_range_and_dtype():
    x8 = np.array([[0, 17], [255, 3]], np.uint8)
    logistic = likelihoods.DiscretizedLogistic()(jnp.zeros((2, 2, 2)))
    assert logistic.support == (0.0, 255.0) and logistic.integer_support
    assert not logistic.continuous
    check = likelihoods.check_support
    check(logistic, x8)                                       # uint8 and int32 levels pass
    check(logistic, x8.astype(np.int32))
    with pytest.raises(ValueError, match=r"^DiscretizedLogistic describes 8-bit integers in "
                                         r"\[0, 255\], but x has dtype float32; pass the uint8 "
                                         r"images, not images scaled to \[0, 1\]"):
        logistic.log_prob(x8.astype(np.float32) / 255)
    mixture = likelihoods.DiscretizedLogisticMixture(2, num_bits=3)(jnp.zeros((2, 6)))
    assert mixture.support == (0.0, 7.0) and mixture.integer_support
    with pytest.raises(ValueError, match=r"^DiscretizedLogisticMixture describes 3-bit "
                                         r"integers in \[0, 7\], but x has values in \[-1, 9\]"):
        mixture.log_prob(np.array([-1, 9]))
    with pytest.raises(ValueError, match=r"3-bit integers.*dtype float64.*integer levels"):
        check(mixture, np.array([1.0, 2.0]))
    continuous = [("Gaussian", likelihoods.Gaussian(0.1)(jnp.zeros(2))),
                  ("Laplace", likelihoods.Laplace()(jnp.zeros(2))),
                  ("LearnedGaussian", likelihoods.LearnedGaussian()(jnp.zeros((2, 2)))),
                  ("LearnedGaussian", likelihoods.LearnedGaussian(sharing="pixel")(
                      jnp.zeros(2), param=jnp.zeros(2))),
                  ("LearnedGaussian", likelihoods.LearnedGaussian(sharing="shared")(
                      jnp.zeros(2), param=jnp.zeros(())))]
    for name, dist in continuous:
        assert dist.support == (0.0, 1.0) and dist.continuous and not dist.integer_support
        check(dist, np.array([0.0, 1.0], np.float32))           # dequantized data pass
        for dtype in ("uint8", "int32"):
            with pytest.raises(ValueError, match=rf"^{name} is a density over continuous data "
                                                 rf"in \[0, 1\], but x has dtype {dtype}; scale "
                                                 r"8-bit images by 1/255.*discretized logistic"):
                check(dist, np.array([0, 200], dtype))
        with pytest.raises(ValueError, match=rf"^{name} describes continuous data in \[0, 1\], "
                                             r"but x has values in \[-0.5, 1\]"):
            check(dist, np.array([-0.5, 1.0], np.float32))
    with pytest.raises(ValueError, match=r"^Gaussian is a density.*dtype uint8"):
        continuous[0][1].log_prob(x8[0])                      # log_prob checks too
    bernoulli = likelihoods.Bernoulli()(jnp.zeros(2))
    assert not bernoulli.integer_support and not bernoulli.continuous
    for ok in (np.array([True, False]), np.array([0, 1], np.int32), np.array([0.2, 1.0])):
        check(bernoulli, ok)
    with pytest.raises(ValueError, match=r"^Bernoulli describes data in \[0, 1\], but x has "
                                         r"values in \[0, 2\]"):
        check(bernoulli, np.array([0, 2], np.int32))
    # traced data are not checked: the jitted training step sees no Python errors, and a
    # level outside the support has probability 0
    lp = jax.jit(lambda d, x: d.log_prob(x))(logistic, np.array([[[0, 1], [2, 3]],
                                                                 [[0, 1], [2, 300]]]))
    assert np.isfinite(lp[0]) and lp[1] == -np.inf


def test_distributions_are_pytrees_and_jit_outputs():
    x = {"b": np.array([[0.0, 1.0], [1.0, 0.0]], np.float32),
         "c": np.array([[0.2, 0.9], [0.5, 0.0]], np.float32),
         "d": np.array([[0, 255], [7, 128]], np.uint8)}
    cases = [
        (likelihoods.Bernoulli(), "b", None, likelihoods.BernoulliLogits),
        (likelihoods.Gaussian(0.3), "c", None, likelihoods.GaussianDistribution),
        (likelihoods.Laplace(0.3), "c", None, likelihoods.LaplaceDistribution),
        (likelihoods.LearnedGaussian(), "c", None, likelihoods.GaussianDistribution),
        (likelihoods.LearnedGaussian(sharing="pixel"), "c", np.full((2, 2), 0.3, np.float32),
         likelihoods.GaussianDistribution),
        (likelihoods.LearnedGaussian(sharing="shared"), "c", np.float32(0.3),
         likelihoods.GaussianDistribution),
        (likelihoods.DiscretizedLogistic(), "d", None,
         likelihoods.DiscretizedLogisticDistribution),
        (likelihoods.DiscretizedLogisticMixture(3), "d", None,
         likelihoods.DiscretizedLogisticMixtureDistribution),
    ]
    for head, kind, param, cls in cases:
        raw = (0.5 * RNG.normal(size=(3, *head.raw_shape((2, 2))))).astype(np.float32)
        assert head.param_shape((2, 2)) == (None if param is None else np.shape(param))
        data = x[kind]

        @jax.jit
        def run(r, p, head=head, data=data):
            make = lambda r_: head(r_, event_ndims=2, param=p)
            live = jax.grad(lambda r_: make(r_).log_prob(data).sum())(r)
            stopped = jax.grad(lambda r_: jax.tree_util.tree_map(
                jax.lax.stop_gradient, make(r_)).log_prob(data).sum())(r)
            dist = make(r)
            return (dist, dist.log_prob(data), dist.mean(),
                    dist.sample(seed=SAMPLE_KEY, sample_shape=(4,)), live, stopped)

        dist, *outputs = run(raw, param)
        lp, mean, samples, live, stopped = jax.device_get(outputs)     # numpy from here
        assert type(dist) is cls and dist.event_shape == (2, 2) and dist.batch_shape == (3,)
        assert lp.shape == (3,) and np.all(np.isfinite(lp))
        assert not np.any(stopped) and np.any(live)
        leaves, treedef = jax.tree_util.tree_flatten(dist)
        again = jax.tree_util.tree_unflatten(treedef, leaves)
        assert type(again) is cls and again.head_name == dist.head_name
        assert jax.tree_util.tree_structure(again) == treedef
        assert all(a is b for a, b in zip(jax.tree_util.tree_leaves(again), leaves, strict=True))
        assert getattr(again, "num_bits", None) == getattr(dist, "num_bits", None)
        # mean and samples in the data's units and dtype kind
        assert mean.shape == (3, 2, 2) and mean.dtype == np.float32
        assert samples.shape == (4, 3, 2, 2)
        if kind == "d":
            assert samples.dtype == np.int32
            assert 0 <= samples.min() <= samples.max() <= 255
            assert 0 <= mean.min() <= mean.max() <= 255
            unit = np.asarray(head.to_unit(samples))
            np.testing.assert_allclose(unit, samples / 255, rtol=1e-6)
            assert unit.dtype == np.float32 and 0 <= unit.min() <= unit.max() <= 1
        elif kind == "b":
            assert samples.dtype == np.int32 and set(np.unique(samples)) <= {0, 1}
            np.testing.assert_allclose(mean, 1 / (1 + np.exp(-raw)), rtol=1e-6)
        else:
            assert samples.dtype == np.float32
            np.testing.assert_allclose(mean, raw[..., 0] if raw.ndim == 4 else raw, rtol=1e-6)
        if kind != "d":
            np.testing.assert_array_equal(head.to_unit(data), data)


class _Tiny(nn.Module):
    head: object
    event_shape: tuple = (3, 2)

    @nn.compact
    def __call__(self, raw):
        return likelihoods.apply_head(self, self.head, raw, self.event_shape,
                                      len(self.event_shape))


def test_apply_head_creates_the_free_parameter():
    x = np.full((3, 2), 0.25, np.float32)
    sigma = math.log(2)                                       # softplus(0): zeros at init
    expected = 6 * (-0.5 * (0.25 / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi))
    for sharing, shape in [("pixel", (3, 2)), ("shared", ()), ("output", None)]:
        tiny = _Tiny(likelihoods.LearnedGaussian(sharing=sharing))
        raw = np.zeros((5, *tiny.head.raw_shape((3, 2))), np.float32)
        variables = jax.jit(tiny.init)(KEY, raw)
        params = variables.get("params", {})
        if shape is None:
            assert "likelihood" not in params
            continue
        assert params["likelihood"].shape == shape and not np.any(params["likelihood"])
        lp = jax.jit(lambda v, r, tiny=tiny: tiny.apply(v, r).log_prob(x))(variables, raw)
        np.testing.assert_allclose(lp, np.full(5, expected), rtol=1e-5)
    assert "params" not in _Tiny(likelihoods.Bernoulli()).init(KEY, jnp.zeros((3, 2)))
    # the MLP decoder goes through apply_head
    dec = jaxvae.MLPDecoder((4,), (3, 2), likelihoods.LearnedGaussian(sharing="pixel"))
    params = jax.jit(dec.init)(KEY, jnp.zeros(2))["params"]
    assert params["likelihood"].shape == (3, 2) and params["out"]["kernel"].shape == (4, 6)
    dec = jaxvae.MLPDecoder((4,), (3, 2), likelihoods.DiscretizedLogisticMixture(2))
    variables = jax.jit(dec.init)(KEY, jnp.zeros(2))
    assert "likelihood" not in variables["params"]
    assert variables["params"]["out"]["kernel"].shape == (4, 36)
    assert jax.jit(dec.apply)(variables, jnp.ones((7, 2))).batch_shape == (7,)


def test_bits_per_dim_numbers():
    assert likelihoods.bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
    assert likelihoods.bits_per_dim(100.0, 10) == pytest.approx(14.4269504, rel=1e-7)
    # dequantized: + D ln 256 nats, i.e. + 8 bits per dimension
    assert likelihoods.bits_per_dim(100.0, 10, levels=256) == pytest.approx(22.4269504,
                                                                            rel=1e-7)
    assert likelihoods.bits_per_dim(-3072 * 2.0, 3072, levels=256) == pytest.approx(
        8 - 2 / math.log(2))
    np.testing.assert_allclose(likelihoods.bits_per_dim(np.array([0.0, 5 * math.log(2)]), 10),
                               [0.0, 0.5])
    with pytest.raises(ValueError, match="num_dims must be >= 1"):
        likelihoods.bits_per_dim(1.0, 0)


def test_head_names():
    assert likelihoods.HEAD_NAMES == ("bernoulli", "gaussian", "learned-gaussian", "laplace",
                                      "logistic", "logistic-mixture")
    classes = [likelihoods.Bernoulli, likelihoods.Gaussian, likelihoods.LearnedGaussian,
               likelihoods.Laplace, likelihoods.DiscretizedLogistic,
               likelihoods.DiscretizedLogisticMixture]
    for name, cls in zip(likelihoods.HEAD_NAMES, classes, strict=True):
        assert type(likelihoods.get_head(name)) is cls
    assert likelihoods.get_head("learned_gaussian", sharing="shared") == \
        likelihoods.LearnedGaussian(sharing="shared")
    assert likelihoods.get_head("logistic-mixture", num_components=2).raw_shape((4,)) == (4, 6)
    assert likelihoods.get_head("logistic", num_bits=5).to_unit(31) == 1.0
    with pytest.raises(ValueError, match=r"'laplace' takes \['scale'\], got \['sigma'\]"):
        likelihoods.get_head("laplace", sigma=0.1)
    with pytest.raises(ValueError, match="num_bits must be an integer in"):
        likelihoods.DiscretizedLogistic(num_bits=0)
    for name in likelihoods.__all__:
        assert hasattr(likelihoods, name)
