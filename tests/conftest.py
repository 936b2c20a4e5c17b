import os
import sys

# Tests import the closed-form oracles as a plain module.
sys.path.insert(0, os.path.dirname(__file__))


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def fast_compilation():
    """XLA without most optimizations, for tests whose few short runs are dominated by
    compilation (the command line, run directories, the examples' quick modes); tests
    of numerics keep the default compiler."""
    import jax

    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)
