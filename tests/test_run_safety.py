"""What a run directory guarantees: checked settings, finite training and checkpoints,
atomic and locked files, resumable only with the same settings (docs/design.md)."""

import json
import os
import shutil
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxvae
from jaxvae import checkpoints, cli, experiment, run_steps, rundir, train
from jaxvae.config import Config, ConfigError

pytestmark = pytest.mark.usefixtures("fast_compilation")


def _images(rng, n, shape=(28, 28)):
    x = np.zeros((n, *shape), np.uint8)
    for img in x:
        r, c = rng.integers(2, 14, size=2)
        img[r:r + 10, c:c + 10] = 255
    return x


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("data")
    parts = {f"x_{s}": _images(rng, n) for s, n in (("train", 60), ("valid", 20), ("test", 20))}
    np.savez(d / "tiny.npz", **parts, **{f"y_{s}": np.zeros(len(v), np.int64)
                                         for s, v in zip(("train", "valid", "test"),
                                                         parts.values())})
    np.savez(d / "rgb.npz", x_train=_images(rng, 40, (8, 8, 3)),
             x_test=_images(rng, 20, (8, 8, 3)), x_valid=_images(rng, 20, (8, 8, 3)))
    np.savez(d / "odd.npz", x_train=_images(rng, 40, (27, 27)), x_test=_images(rng, 20, (27, 27)))
    np.savez(d / "mixed.npz", x_train=_images(rng, 40), x_valid=_images(rng, 20),
             x_test=_images(rng, 20, (14, 14)))
    return d


def tiny(data_dir, **changes):
    base = Config(latent_dim=4, hidden=(32,), objective="elbo", k=1, steps=4, batch_size=20,
                  eval_k=2, eval_limit=10, data=f"npz:{data_dir / 'tiny.npz'}")
    return base.replace(**changes)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """One small run trained from a relative npz path (config.json must store it absolute)."""
    root = tmp_path_factory.mktemp("runs")
    cwd = os.getcwd()
    os.chdir(data_dir)
    try:
        results = jaxvae.train_and_evaluate(tiny(data_dir, data="npz:tiny.npz"),
                                            str(root / "run"), progress=False)
    finally:
        os.chdir(cwd)
    return str(root / "run"), results


def copy_run(trained, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(trained[0], dst)
    return str(dst)


# --- settings refused up front ------------------------------------------------------------------

@pytest.mark.parametrize("changes,field", [
    ({"lr": float("nan")}, "lr"), ({"lr": 0.0}, "lr"), ({"lr": float("inf")}, "lr"),
    ({"beta": float("nan")}, "beta"), ({"beta": -1.0}, "beta"),
    ({"passes_scale": float("inf")}, "passes_scale"), ({"latent_dim": -3}, "latent_dim"),
    ({"latent_dim": 0}, "latent_dim"), ({"batch_size": 0}, "batch_size"), ({"k": 0}, "k"),
    ({"model": "iwae-2layer", "hidden": None}, "latent_dim"),
])
def test_bad_settings_are_refused_before_anything_is_written(data_dir, tmp_path, changes, field):
    config = tiny(data_dir, **changes)
    with pytest.raises(ConfigError) as info:
        jaxvae.train_and_evaluate(config, str(tmp_path / "run"), progress=False)
    assert info.value.field == field
    assert not (tmp_path / "run").exists()


def test_validate_mutates_nothing_and_json_round_trips():
    config = Config(model="nf", flow="radial", num_flows=2, hidden=(8, 8), objective="elbo",
                    beta=0.5, annealing="linear", annealing_steps=10)
    before = config.to_dict()
    assert config.validate() is config and config.to_dict() == before
    assert Config.from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="unknown setting"):
        Config.from_dict({**before, "colour": "blue"})


@pytest.mark.parametrize("name,changes,message", [
    ("batch larger than the data", {"batch_size": 61}, "larger than the 60"),
    ("train and test of different shapes", {"data": "mixed"}, "shape"),
    ("k beyond memory", {"k": 10_000_000, "batch_size": 20}, "GiB"),
])
def test_data_checks_run_before_anything_is_written(data_dir, tmp_path, name, changes, message):
    if changes.get("data") == "mixed":
        changes["data"] = f"npz:{data_dir / 'mixed.npz'}"
    with pytest.raises(ConfigError, match=message):
        jaxvae.train_and_evaluate(tiny(data_dir, **changes), str(tmp_path / "run"),
                                  progress=False)
    assert not (tmp_path / "run").exists()


def test_cli_refuses_nan_learning_rate_in_one_line(data_dir, tmp_path, capfd):
    out = tmp_path / "run"
    code = cli.main(["train", "--data", f"npz:{data_dir / 'tiny.npz'}", "--lr", "nan",
                     "--out", str(out), "--no-progress"])
    err = capfd.readouterr().err
    assert code == 2 and "--lr must be a finite number" in err and len(err.splitlines()) == 1
    assert not out.exists()


# --- training that diverges -----------------------------------------------------------------------

def _sqrt_problem(tmp_path):
    """SGD(lr=10) on sqrt(w) from w=1: step 1 gives w=-4, so step 2's loss is NaN."""
    loss = lambda params, batch, key: (jnp.sqrt(params["w"]).sum(), {})
    tx = optax.sgd(10.0)
    state = train.create_train_state({"w": jnp.ones(())}, tx, jax.random.PRNGKey(0))
    return state, train.make_train_step(loss, tx), np.zeros((40, 1), np.float32)


def test_training_stops_at_the_first_non_finite_step_and_keeps_the_good_checkpoint(tmp_path):
    state, step, x = _sqrt_problem(tmp_path)
    with pytest.raises(train.TrainingDivergedError, match="at step 2.*step 1"):
        train.fit(state, step, x, batch_size=10, num_epochs=3, workdir=str(tmp_path),
                  checkpoint_every=1, progress=False)
    ckpt = checkpoints.Checkpointer(str(tmp_path / "checkpoints"))
    assert ckpt.all_steps() == [1]
    restored = ckpt.restore(state)
    assert float(restored.params["w"]) == -4.0 and int(restored.step) == 1
    ckpt.close()


def test_a_non_finite_step_is_flagged():
    state, step, x = _sqrt_problem(None)
    state, m1 = step(state, x[:10])
    assert bool(m1["finite"]) and float(state.params["w"]) == -4.0
    state, m2 = step(state, x[:10])
    assert not bool(m2["finite"])


def test_fit_refuses_non_finite_initial_parameters():
    state, step, x = _sqrt_problem(None)
    state = state._replace(params={"w": jnp.array(jnp.nan)})
    with pytest.raises(ValueError, match="initial parameters"):
        train.fit(state, step, x, batch_size=10, num_epochs=1, progress=False)


# --- checkpoints: finite, verified, not interrupted ----------------------------------------------

def _state():
    return train.create_train_state({"w": jnp.arange(4.0)}, optax.adam(1e-3),
                                    jax.random.PRNGKey(0))


def test_a_non_finite_state_is_never_saved(tmp_path):
    ckpt = checkpoints.Checkpointer(str(tmp_path))
    bad = _state()._replace(params={"w": jnp.array([0.0, jnp.nan, 0.0, 0.0])})
    with pytest.raises(checkpoints.CheckpointError, match="not finite"):
        ckpt.save(bad)
    assert ckpt.all_steps() == []
    ckpt.close()


def test_flipped_bytes_and_nan_checkpoints_are_errors_naming_the_checkpoint(tmp_path):
    ckpt = checkpoints.Checkpointer(str(tmp_path / "a"))
    state = _state()
    ckpt.save(state)
    files = [os.path.join(r, f) for r, _, fs in os.walk(ckpt.path(0)) for f in fs
             if os.sep + "state" + os.sep in os.path.join(r, f)]
    data_file = max(files, key=os.path.getsize)
    blob = bytearray(open(data_file, "rb").read())
    mid = len(blob) // 2
    blob[mid:mid + 16] = bytes(b ^ 0xFF for b in blob[mid:mid + 16])
    open(data_file, "wb").write(bytes(blob))
    with pytest.raises(checkpoints.CheckpointError, match=str(ckpt.path(0))):
        ckpt.restore(state)
    ckpt.close()
    # a NaN state written behind the checkpointer's back is refused on restore
    ckpt = checkpoints.Checkpointer(str(tmp_path / "b"))
    import orbax.checkpoint as ocp
    bad = state._replace(params={"w": jnp.full(4, jnp.nan)})
    ckpt._manager.save(0, args=ocp.args.Composite(
        state=ocp.args.StandardSave(bad),
        digest=ocp.args.JsonSave({"sha256": checkpoints.tree_digest(bad)})))
    ckpt._manager.wait_until_finished()
    with pytest.raises(checkpoints.CheckpointError, match="NaN"):
        ckpt.restore(state)
    ckpt.close()


def test_ctrl_c_during_a_save_completes_the_checkpoint_then_interrupts(tmp_path, monkeypatch):
    ckpt = checkpoints.Checkpointer(str(tmp_path))
    state = _state()
    ckpt.save(state)
    real_save = ckpt._manager.save

    def save_with_interrupt(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)      # Ctrl-C arrives mid-write
        return real_save(*args, **kwargs)

    monkeypatch.setattr(ckpt._manager, "save", save_with_interrupt)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(state._replace(step=jnp.array(1, jnp.int32)))
    assert ckpt.all_steps() == [0, 1]
    assert int(ckpt.restore(state, 1).step) == 1 and int(ckpt.restore(state, 0).step) == 0
    ckpt.close()


# --- the run directory -------------------------------------------------------------------

def test_run_directory_of_a_trained_run(trained, data_dir):
    workdir, results = trained
    stored = json.load(open(os.path.join(workdir, "config.json")))
    assert stored["config"]["data"] == f"npz:{data_dir / 'tiny.npz'}"    # absolute
    assert np.isfinite(results.metrics["nll"]) and results.metrics["steps"] == 4
    assert json.load(open(os.path.join(workdir, "results.json")))["nll"] == results.metrics["nll"]


def test_resume_refuses_a_different_setting(trained, tmp_path):
    workdir = copy_run(trained, tmp_path)
    config = trained[1].config
    for field, value in (("k", 2), ("lr", 1e4), ("batch_size", 10), ("data", "embedded"),
                         ("objective", "iwae")):
        with pytest.raises(ConfigError, match=f"resume: {field} was"):
            jaxvae.train_and_evaluate(config.replace(**{field: value}), workdir, resume=True,
                                      progress=False)


def test_a_second_writer_is_refused(data_dir, tmp_path):
    os.makedirs(tmp_path / "run")
    with rundir.RunLock(str(tmp_path / "run")):
        with pytest.raises(rundir.RunDirError, match="in use"):
            jaxvae.train_and_evaluate(tiny(data_dir), str(tmp_path / "run"), progress=False)
    assert os.listdir(tmp_path / "run") == [".lock"]


def test_files_are_never_written_through_planted_links(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json.tmp", "eval-test-k5.json.tmp", ".config.json.tmp"):
        os.symlink(outside, run / name)
    rundir.write_json(str(run / "config.json"), {"a": 1})
    os.symlink(outside, run / "results.json")
    rundir.write_json(str(run / "results.json"), {"b": 2})
    assert outside.read_text() == "precious"
    assert json.load(open(run / "results.json")) == {"b": 2}
    os.symlink(outside, run / "metrics.jsonl")
    with pytest.raises(rundir.RunDirError):
        rundir.append_jsonl(str(run / "metrics.jsonl"), {"step": 1})
    assert outside.read_text() == "precious"


def test_result_files_are_standard_json(tmp_path):
    with pytest.raises(rundir.RunDirError, match="nll"):
        rundir.write_json(str(tmp_path / "r.json"), {"nll": float("nan")})
    assert not os.listdir(tmp_path)
    with pytest.raises(experiment.NonFiniteResultError, match="nll"):
        run_steps._finite({"nll": float("nan")}, "a run")


def test_torn_metrics_line_is_dropped_and_a_damaged_one_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"ste')
    assert rundir.read_jsonl(str(path)) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(rundir.RunDirError, match="metrics.jsonl, line 2"):
        rundir.read_jsonl(str(path))


def test_overwrite_removes_the_old_runs_files_only(trained, tmp_path, monkeypatch):
    workdir = copy_run(trained, tmp_path)
    for name in ("eval-test-k5.json", "samples-seed3.png", "notes.txt"):
        open(os.path.join(workdir, name), "w").close()

    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_steps, "run_training", stop)
    with pytest.raises(KeyboardInterrupt):
        jaxvae.train_and_evaluate(trained[1].config, workdir, overwrite=True, progress=False)
    assert sorted(os.listdir(workdir)) == [".lock", "config.json", "notes.txt"]


# --- eval and sample ---------------------------------------------------------------------

def test_config_json_missing_a_key_is_one_line(trained, tmp_path, capfd):
    workdir = copy_run(trained, tmp_path)
    stored = json.load(open(os.path.join(workdir, "config.json")))
    del stored["config"]["k"]
    json.dump(stored, open(os.path.join(workdir, "config.json"), "w"))
    assert cli.main(["eval", workdir, "--no-progress"]) == 2
    err = capfd.readouterr().err
    assert "missing k" in err and len(err.splitlines()) == 1


def test_checkpoint_shape_mismatch_is_one_line(trained, tmp_path, capfd):
    workdir = copy_run(trained, tmp_path)
    stored = json.load(open(os.path.join(workdir, "config.json")))
    stored["config"]["latent_dim"] = 5
    json.dump(stored, open(os.path.join(workdir, "config.json"), "w"))
    assert cli.main(["sample", workdir]) == 2
    err = capfd.readouterr().err
    assert "checkpoint" in err and len(err.strip().splitlines()) == 1


def test_eval_checks_limit_and_output_before_computing(trained, tmp_path, capfd, monkeypatch):
    workdir = copy_run(trained, tmp_path)
    assert cli.main(["eval", workdir, "--limit", "-95"]) == 2
    assert "--limit must be >= 1" in capfd.readouterr().err
    monkeypatch.setattr(jaxvae.evaluate, "log_likelihood",
                        lambda *a, **k: pytest.fail("evaluated before checking the output"))
    assert cli.main(["eval", workdir, "--output", str(tmp_path / "no" / "dir" / "e.json")]) == 2
    assert "cannot write" in capfd.readouterr().err


def test_eval_from_another_directory_and_finite_results(trained, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    workdir = copy_run(trained, tmp_path)
    assert cli.main(["eval", workdir, "--k", "3", "--limit", "5", "--no-progress"]) == 0
    result = json.load(open(os.path.join(workdir, "eval-test-k3.json")))
    assert np.isfinite(result["nll"]) and result["num_examples"] == 5


def test_rgb_8bit_data_train_a_conv_model_with_colour_pictures(data_dir, tmp_path):
    from PIL import Image

    config = tiny(data_dir, data=f"npz:{data_dir / 'rgb.npz'}", steps=2, model="conv",
                  likelihood="logistic", hidden=(16,), channels=(4,))
    results = jaxvae.train_and_evaluate(config, str(tmp_path / "run"), progress=False)
    assert np.isfinite(results.metrics["nll"]) and results.metrics["bits_per_dim"] > 0
    assert results.metrics["test_data"] == "8-bit integers 0..255"
    for name in ("samples.png", "reconstructions.png", "interpolation.png"):
        assert Image.open(tmp_path / "run" / name).mode == "RGB"


def test_conv_refuses_an_image_shape_it_cannot_tile_before_writing(data_dir, tmp_path):
    config = tiny(data_dir, data=f"npz:{data_dir / 'odd.npz'}", model="conv", hidden=None)
    with pytest.raises(ConfigError, match=r"\(27, 27\).*H = 26 or 28"):
        jaxvae.train_and_evaluate(config, str(tmp_path / "run"), progress=False)
    assert not os.path.exists(tmp_path / "run")


def test_bernoulli_likelihood_rejects_data_outside_its_support():
    model = jaxvae.iwae_mlp(event_shape=(4, 4), latent_dim=2, hidden=(8,))
    params = model.init_params(jax.random.PRNGKey(0))
    x = np.full((3, 4, 4), 255.0, np.float32)
    bound = jaxvae.make_objective(model, "iwae", 2)
    with pytest.raises(ValueError, match=r"\[0, 1\].*\[255, 255\].*1/255"):
        bound(params, x, jax.random.PRNGKey(1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        jaxvae.log_likelihood(model, params, x, jax.random.PRNGKey(1), 2)


@pytest.mark.parametrize("damage", ["manifest.ocdbt", "_METADATA", "digest"])
def test_a_damaged_checkpoint_is_one_line_on_stderr(trained, tmp_path, capfd, damage):
    workdir = copy_run(trained, tmp_path)
    for root, dirs, files in os.walk(os.path.join(workdir, "checkpoints")):
        for name in files + dirs:
            if name == damage:
                path = os.path.join(root, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    assert cli.main(["sample", workdir]) == 2
    err = capfd.readouterr().err
    assert "checkpoint" in err and len(err.strip().splitlines()) == 1, err[:2000]


def test_the_command_prints_one_line_for_a_mismatched_checkpoint(trained, tmp_path):
    """As a process: orbax's background tasks must not print after the error line."""
    import subprocess
    import sys
    workdir = copy_run(trained, tmp_path)
    stored = json.load(open(os.path.join(workdir, "config.json")))
    stored["config"]["latent_dim"] = 5
    json.dump(stored, open(os.path.join(workdir, "config.json"), "w"))
    proc = subprocess.run([sys.executable, "-m", "jaxvae", "sample", workdir],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("jaxvae sample: error: checkpoint") and \
        len(proc.stderr.strip().splitlines()) == 1, proc.stderr[:3000]
