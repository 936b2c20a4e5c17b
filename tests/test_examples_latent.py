"""The latent-space examples run in their --quick mode and report consistent numbers.

examples/latent_2d.py, ae_vs_vae.py and latent_lab.py, each imported by path and run once
(20 training steps of narrow networks on the embedded data); the assertions read the JSON
each writes and hold for any run that is wired correctly, however short.
"""

import json
import math

import pytest
from example_scripts import load

pytestmark = pytest.mark.usefixtures("fast_compilation")


def run(name, tmp_path):
    """Runs examples/``name``.py --quick into ``tmp_path``; returns its JSON."""
    load(name).main(["--quick", "--no-progress", "--out", str(tmp_path),
                     "--json", str(tmp_path / "x.json")])
    return json.loads((tmp_path / "x.json").read_text())


def numbers(tree):
    """Every int or float in a JSON tree (booleans excluded)."""
    if isinstance(tree, dict):
        return [v for value in tree.values() for v in numbers(value)]
    if isinstance(tree, list):
        return [v for value in tree for v in numbers(value)]
    return [tree] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def test_latent_2d_quick(tmp_path):
    result = run("latent_2d", tmp_path)
    assert (tmp_path / "latent_2d.png").stat().st_size > 0
    s = result["settings"]
    assert set(s) == {"reconstruction only", "KL only", "both"}
    assert all(math.isfinite(v) for v in numbers(s))
    for r in s.values():
        assert r["kl"] >= -1e-4 and len(r["spread"]) == 2 and r["posterior_std"] > 0
        assert r["elbo"] == pytest.approx(r["reconstruction"] - r["kl"], abs=1e-3)
    # the weights act on the terms they weight: KL alone gives the smallest KL, the
    # reconstruction alone the best reconstruction
    assert s["KL only"]["kl"] < min(s["both"]["kl"], s["reconstruction only"]["kl"])
    assert s["reconstruction only"]["reconstruction"] > max(s["both"]["reconstruction"],
                                                            s["KL only"]["reconstruction"])


def test_ae_vs_vae_quick(tmp_path):
    result = run("ae_vs_vae", tmp_path)
    for name in ("ae_vs_vae_samples.png", "ae_vs_vae_interpolations.png"):
        assert (tmp_path / name).stat().st_size > 0
    models, samples = result["models"], result["samples"]
    assert list(models) == ["AE", "denoising AE", "VAE"]
    assert all(math.isfinite(v) for v in numbers(models) + numbers(samples))
    assert {"elbo", "kl"} <= set(models["VAE"]) and models["VAE"]["kl"] >= 0
    for r in models.values():
        assert r["reconstruction"] > 0                   # a Bernoulli -log p of binary images
        assert r["path_ratio"] >= 1 - 1e-6               # the triangle inequality
        assert 1 / 9 - 1e-6 <= r["largest_step_share"] <= 1 + 1e-6     # 10-point paths
    # the AE minimizes exactly this reconstruction error; the VAE's is that of noisy codes
    assert models["AE"]["reconstruction"] < models["VAE"]["reconstruction"]
    assert [(s["model"], s["z"].split()[0]) for s in samples] == [
        (m, z) for m in models for z in ("Gaussian", "N(0,")]
    # one reference (test images against the same training images) for every sample set
    assert len({s["reference_median"] for s in samples}) == 1
    assert all(s["ratio"] == pytest.approx(s["samples_median"] / s["reference_median"])
               for s in samples)


def test_latent_lab_quick(tmp_path):
    result = run("latent_lab", tmp_path)
    for name in ("traversal", "attributes", "analogies", "neighbours"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    assert all(math.isfinite(v) for v in numbers({k: v for k, v in result.items()
                                                   if k != "args"}))
    t = result["traversal"]
    assert t["cells"] == [6, 9] and len(set(t["units"])) == 6
    kl = t["kl_per_unit"]
    assert len(kl) == 16 and t["kl"] == sorted(kl, reverse=True)[:6]   # the 6 largest KLs
    assert t["kl"] == [kl[u] for u in t["units"]] and min(kl) >= -1e-6
    assert set(result["edits"]) == {"thickness", "slant", "7 - 1"}
    for e in result["edits"].values():
        assert e["amounts"] == [-2.0, 0.0, 2.0] and len(e["values"]) == 3
        assert e["direction_norm"] > 0
    # the groups the vectors come from differ in the measured attribute as intended
    assert all(e["groups"][0] > e["groups"][1] for e in result["edits"].values())
    assert len(result["analogies"]) == 5
    check = result["copy_check"]
    assert check["ratio"] == pytest.approx(check["samples_median"] / check["reference_median"])
    assert 0 <= check["closer_than_reference"] <= 1
