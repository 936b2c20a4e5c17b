import numpy as np
import optax
import pytest

import jaxvae
from jaxvae import schedules


def test_iwae_paper_schedule_stages():
    protocol = schedules.iwae_paper_optimizer(steps_per_pass=3000)
    assert protocol.num_steps == 3280 * 3000           # sum_i 3^i = 3280 passes
    assert [s for s, _ in protocol.stages] == [3 ** i * 3000 for i in range(8)]
    np.testing.assert_allclose([lr for _, lr in protocol.stages],
                               [1e-3 * 10 ** (-i / 7) for i in range(8)])
    assert protocol.stages[-1][1] == pytest.approx(1e-4)


def test_learning_rate_applied_per_stage():
    protocol = schedules.iwae_paper_optimizer(steps_per_pass=2, passes_scale=1.0, num_stages=3)
    # stages of 2, 6, 18 steps; with Adam the first update of a constant gradient is -lr
    # times sign(g) (up to eps), so read the learning rate off the update size.
    params = {"w": np.float32(0.0)}
    state = protocol.tx.init(params)
    sizes = []
    for _ in range(protocol.num_steps):
        updates, state = protocol.tx.update({"w": np.float32(1.0)}, state)
        sizes.append(-float(updates["w"]))
    expected = [1e-3] * 2 + [1e-3 * 10 ** (-1 / 7)] * 6 + [1e-3 * 10 ** (-2 / 7)] * 18
    np.testing.assert_allclose(sizes, expected, rtol=1e-3)


def test_scaled_schedule_and_errors():
    protocol = schedules.iwae_paper_optimizer(steps_per_pass=100, passes_scale=0.01)
    assert [s for s, _ in protocol.stages] == [1, 3, 9, 27, 81, 243, 729, 2187]
    with pytest.raises(ValueError, match="passes_scale"):
        schedules.iwae_paper_optimizer(100, 0.0)
    with pytest.raises(ValueError, match="steps_per_pass"):
        schedules.iwae_paper_optimizer(0)
    assert isinstance(protocol.tx, optax.GradientTransformation)


def test_config_sigmoid_annealing_spans_zero_to_one():
    from jaxvae import run_steps

    for steps in (10, 800, 20000):
        beta = run_steps.beta_schedule(jaxvae.Config(objective="elbo", annealing="sigmoid",
                                                     annealing_steps=steps).validate())
        assert float(beta(0)) < 0.01 and float(beta(steps)) > 0.99
        np.testing.assert_allclose(float(beta(steps // 2)), 0.5, atol=0.02)
