"""Train-step throughput of jaxvae's IWAE against hand-written JAX, PyTorch and NumPyro.

Model: the IWAE paper's one-stochastic-layer MLP (Burda et al. 2015): 784-200-200-50 tanh
Gaussian encoder with exp-parameterized variance, 50-200-200-784 tanh Bernoulli decoder,
loss = -mean_batch(logsumexp_k log w - log k), Adam(1e-3). Shapes (batch, k):
(20, 1), (20, 50), (100, 5). Contenders:

* ``jaxvae``          - ``jaxvae.make_train_step(jaxvae.make_loss(iwae_mlp(), "iwae", k), adam)``
* ``jax_handwritten`` - ``peers/jax_handwritten.py``: dicts of weights, one jit, donated state
* ``torch_eager``     - ``peers/torch_iwae.py``: torch.nn + torch.optim.Adam
* ``torch_eager_1t``  - the same with ``torch.set_num_threads(1)``: on a shared 2-core machine
  OpenMP's barriers make 2-thread torch up to 100x slower whenever another process holds
  a core; ``torch_eager_best`` is the faster of the two in each repeat
* ``torch_compile``   - the same step function under ``torch.compile`` (``dynamic=False``);
  ``torch_compile_1t`` compiled and run with 1 thread; ``torch_compile_best`` as above
* ``numpyro``         - ``peers/numpyro_iwae.py``: SVI + RenyiELBO(alpha=0, num_particles=k),
  flax modules via ``flax_module``, ``jax.jit(svi.update)``

Method: all contenders start from the same jaxvae parameters and train on the same fixed
binary batch. Before timing, a self-check asserts that jaxvae, the hand-written step and
torch give the same loss (and gradients) at identical weights and noise (k = 1 and 5), and
that NumPyro's RenyiELBO / B agrees with jaxvae's loss in expectation. Per shape: the first
call of each contender is timed apart (compile time); then R repeats, in each of which
every contender runs N steps (N calibrated to ~``--target`` seconds) followed by one
device sync, round-robin in an order rotated every repeat. Ratios are paired per repeat
(same repeat, adjacent in time) and summarized by the median and [min, max] over repeats.
The large-matmul FLOP rate (jitted float32 2048^3 ``jnp.dot``) is a contender in the
(20, 50) round-robin, so ``flop_fraction`` is paired too. The k = 5000 evaluation runs in
subprocesses (one per setting) so that its peak RSS is its own.

Usage (from the repository root, after ``pip install -e '.[bench]'``)::

    python -m benchmarks.throughput [--quick] [--json PATH] [--repeats R] [--data npz:PATH]

Modules: ``config`` (shapes, contender names, targets), ``environment`` (machine, git state,
load), ``contenders`` (one ``Runner`` per contender), ``check`` (the self-check),
``timing`` (the round-robin timing, summaries, FLOP counts), ``evaluation`` (the k = 5000
evaluation in a subprocess), ``results`` (ratios, headline, JSON), ``report`` (markdown).
"""
