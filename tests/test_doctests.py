"""The docstring examples run: each objective states an identity (IWAE with k = 1 and the
same key is the Monte Carlo ELBO) that would fail if the code changed under it."""

import doctest

import pytest

import jaxvae

MODULES = [jaxvae.objectives, jaxvae.config]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2, f"{module.__name__} lost its docstring examples"
    assert result.failed == 0
