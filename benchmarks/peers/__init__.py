"""Peer implementations of the IWAE train step used by ``python -m benchmarks.throughput``.

Each peer implements the same model and objective as ``jaxvae.iwae_mlp()`` with
``jaxvae.make_loss(model, "iwae", k)``: 784-200-200-50 tanh Gaussian encoder with
exp-parameterized variance (sigma = exp(raw / 2)), 50-200-200-784 tanh Bernoulli decoder,
loss = -mean_batch(logsumexp_k log w - log k), Adam. Every peer can be initialised from
jaxvae's parameters and exposes a loss function that takes the reparameterization noise
``eps: [B, k, 50]`` explicitly, so that the benchmark can check that all contenders
compute the same number before timing them.
"""
