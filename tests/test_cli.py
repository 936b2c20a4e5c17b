import json
import os

import numpy as np
import pytest
from PIL import Image

from jaxvae.cli import main

pytestmark = pytest.mark.usefixtures("fast_compilation")


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    """A tiny MNIST-shaped data set: blobs of varying position, uint8 like the real file."""
    rng = np.random.default_rng(0)
    def images(n):
        x = np.zeros((n, 28, 28), np.uint8)
        for img in x:
            r, c = rng.integers(4, 20, size=2)
            img[r:r + 8, c:c + 8] = 255
        return x
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x_train=images(200), y_train=np.zeros(200, np.int64),
             x_valid=images(40), y_valid=np.zeros(40, np.int64),
             x_test=images(40), y_test=np.zeros(40, np.int64))
    return f"npz:{path}"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(npz, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "run")
    assert main(["train", "--data", npz, "--epochs", "2", "--batch-size", "20", "-k", "2",
                 "--eval-k", "10", "--out", out, "--no-progress"]) == 0
    return out


def test_train_writes_a_complete_run_directory(trained):
    for name in ("config.json", "metrics.jsonl", "results.json", "samples.png",
                 "reconstructions.png", "interpolation.png"):
        assert os.path.isfile(os.path.join(trained, name)), name
    assert os.path.isdir(os.path.join(trained, "checkpoints", "20"))
    results = json.load(open(os.path.join(trained, "results.json")))
    assert results["steps"] == 20 and results["num_test"] == 40
    assert -800 < results["test_elbo"] < 0 and -800 < results["test_iwae_k10"] < 0
    records = [json.loads(line) for line in open(os.path.join(trained, "metrics.jsonl"))]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all("eval_elbo" in r for r in records)
    assert Image.open(os.path.join(trained, "samples.png")).size[0] > 28


def test_eval_and_sample(trained, capsys):
    code, out, _ = run(capsys, "eval", trained, "--k", "20", "--no-progress")
    assert code == 0 and "test NLL" in out
    result = json.load(open(os.path.join(trained, "eval-test-k20.json")))
    assert result["k"] == 20 and result["num_examples"] == 40 and result["nll"] > 0
    code, out, _ = run(capsys, "sample", trained, "--num", "9", "--seed", "3")
    assert code == 0
    assert Image.open(os.path.join(trained, "samples-seed3.png")).size == (3 * 29 - 1, 3 * 29 - 1)


def test_existing_run_is_not_overwritten_then_resumes(npz, trained, capsys, tmp_path):
    ckpt = os.path.join(trained, "checkpoints", "20")
    mtime = os.path.getmtime(ckpt)
    code, _, err = run(capsys, "train", "--data", npz, "--out", trained, "--no-progress")
    assert code == 2 and "already holds a run" in err and "Traceback" not in err
    assert os.path.getmtime(ckpt) == mtime
    code, out, _ = run(capsys, "train", "--data", npz, "--epochs", "3", "--batch-size", "20",
                       "-k", "2", "--eval-k", "5", "--out", trained, "--resume", "--no-progress")
    assert code == 0
    assert json.load(open(os.path.join(trained, "results.json")))["steps"] == 30


@pytest.mark.parametrize("argv,message", [
    (["train", "--data", "npz:/no/such/file.npz"], "/no/such/file.npz"),
    (["train", "--data", "imagenet"], "imagenet"),
    (["train", "-k", "0"], "-k must be >= 1"),
    (["train", "--batch-size", "100000", "--epochs", "1"], "batch_size 100000"),
    (["train", "--objective", "iwae", "--beta", "0.5"], "--beta"),
    (["eval", "/no/such/run"], "not a jaxvae run directory"),
    (["train", "--model", "nf", "--objective", "elbo", "--analytic-kl"], "closed-form KL"),
    (["train", "--model", "nf", "--num-flows", "-1"], "--num-flows must be >= 0"),
])
def test_bad_input_ends_in_one_readable_error(argv, message, capsys, tmp_path):
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "r")) if argv[0] == "train" \
        else run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_corrupt_checkpoint_is_reported(trained, capsys, tmp_path):
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    for root, _, files in os.walk(broken / "checkpoints"):
        for name in files:
            if name != "_CHECKPOINT_METADATA":
                os.remove(os.path.join(root, name))
    code, _, err = run(capsys, "sample", str(broken))
    assert code == 2 and "checkpoint" in err and "Traceback" not in err


def test_help_is_there(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--objective" in out and "--resume" in out and "embedded" in out


def test_two_layer_model_with_the_paper_protocol(npz, capsys, tmp_path):
    out = str(tmp_path / "two")
    code, text, err = run(capsys, "train", "--data", npz, "--model", "iwae-2layer",
                          "--protocol", "iwae-paper", "--passes-scale", "0.001",
                          "--eval-k", "3", "--out", out, "--no-progress")
    assert code == 0, err
    config = json.load(open(os.path.join(out, "config.json")))["config"]
    assert config["batch_size"] is None and config["protocol"] == "iwae-paper"
    # 10 steps per pass; stages of max(1, round(3^i * 0.001 * 10)) steps
    assert json.load(open(os.path.join(out, "results.json")))["steps"] == 36
    code, _, err = run(capsys, "sample", out, "--num", "4")   # restores the schedule's state
    assert code == 0, err


def test_flow_posterior_model(npz, capsys, tmp_path):
    import jaxvae
    from jaxvae import cli
    assert cli.FLOWS == jaxvae.flows.FLOWS
    out = str(tmp_path / "nf")
    code, text, err = run(capsys, "train", "--data", npz, "--model", "nf", "--flow", "radial",
                          "--num-flows", "2", "--epochs", "1", "--batch-size", "50",
                          "--eval-k", "3", "--out", out, "--no-progress")
    assert code == 0, err
    config = json.load(open(os.path.join(out, "config.json")))["config"]
    assert (config["flow"], config["num_flows"]) == ("radial", 2)
    code, text, err = run(capsys, "eval", out, "--k", "4", "--limit", "5", "--no-progress")
    assert code == 0, err


def test_conditional_model_trains_evaluates_and_samples_per_label(capsys, tmp_path):
    out = str(tmp_path / "cvae")
    code, _, err = run(capsys, "train", "--model", "cvae", "--hidden", "16", "--latent-dim", "2",
                       "--objective", "elbo", "-k", "1", "--steps", "3", "--batch-size", "20",
                       "--eval-k", "4", "--eval-limit", "30", "--out", out, "--no-progress")
    assert code == 0, err
    results = json.load(open(os.path.join(out, "results.json")))
    assert results["num_test"] == 30 and -800 < results["test_iwae_k4"] < 0
    code, text, _ = run(capsys, "eval", out, "--k", "4", "--limit", "30", "--no-progress")
    assert code == 0 and "test NLL" in text
    code, _, _ = run(capsys, "sample", out, "--num", "20", "--out", str(tmp_path / "s.png"))
    width, height = Image.open(tmp_path / "s.png").size
    assert code == 0 and width == 2 * 28 + 1 and height == 10 * 28 + 9   # a row per label
    code, _, err = run(capsys, "train", "--model", "cvae", "--num-classes", "3", "--steps", "1",
                       "--out", str(tmp_path / "bad"), "--no-progress")
    assert code == 2 and "num_classes" in err and "0..9" in err


def test_draw_trains_evaluates_and_samples(npz, capsys, tmp_path):
    """--model draw [--attention]: the KL of each step instead of active units, the canvas
    over time beside the samples; estimators that split the parameters are refused."""
    out = str(tmp_path / "draw")
    code, text, err = run(capsys, "train", "--data", npz, "--model", "draw", "--attention",
                          "2,3", "--draw-steps", "3", "--latent-dim", "2", "--hidden", "8",
                          "--objective", "elbo", "-k", "1", "--steps", "4", "--batch-size",
                          "20", "--eval-k", "4", "--eval-limit", "10", "--out", out,
                          "--no-progress")
    assert code == 0, err
    assert "KL" in text and "over 3 steps" in text
    results = json.load(open(os.path.join(out, "results.json")))
    assert len(results["kl_per_step"]) == 3 and "active_units" not in results
    config = json.load(open(os.path.join(out, "config.json")))["config"]
    assert (config["draw_steps"], config["attention"]) == (3, [2, 3])
    width, height = Image.open(os.path.join(out, "canvas.png")).size
    assert (width, height) == (3 * 28 + 2, 8 * 28 + 7)      # 8 drawings x 3 steps
    code, text, err = run(capsys, "eval", out, "--k", "4", "--limit", "5", "--no-progress")
    assert code == 0 and "test NLL" in text, err
    code, _, err = run(capsys, "sample", out, "--num", "4", "--out", str(tmp_path / "s.png"))
    assert code == 0, err
    code, _, err = run(capsys, "train", "--data", npz, "--model", "draw", "--objective",
                       "elbo", "--estimator", "stl", "--steps", "1", "--out",
                       str(tmp_path / "bad"), "--no-progress")
    assert code == 2 and "estimator" in err and "DRAW" in err
