"""Did the GAN copy its training set (bench/metrics/memorization.py)? The C_T data-copying test and the
nearest-neighbour ratios tell copies of training images from new images of the same kind; `bench memorization` says
so in one verdict line (or JSON); a trial's check lands in MLflow with its closest pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.data import load_dataset
from bench.metrics import memorization as mem
from bench.metrics.features import to_uint8
from tests.conftest import bench_cli
from tests.support import mlflow_runs, one_line_error, photo_folder


@pytest.fixture(scope="module")
def digits():
    """The digits as pixel vectors: training split, and the test split cut in two (held out / new images)."""
    train = load_dataset("digits", 16, "train").images
    test = mem.pixel_vectors(to_uint8(load_dataset("digits", 16, "test").images))
    return train, mem.pixel_vectors(to_uint8(train)), test[:180], test[180:]


def noisy_copies(images: torch.Tensor, n: int, sigma: float) -> np.ndarray:
    g = torch.Generator().manual_seed(0)
    chosen = images[torch.randperm(len(images), generator=g)[:n]]
    return mem.pixel_vectors(to_uint8((chosen + sigma * torch.randn(chosen.shape, generator=g)).clamp(-1, 1)))


@pytest.mark.slow
def test_copies_of_training_images_are_told_from_new_images_of_the_same_kind(digits):
    images, train, heldout, new = digits
    copied = mem.space(train, heldout, noisy_copies(images, len(new), 0.05))
    assert copied.ct < mem.COPIES and copied.ratio < 0.5 and copied.cells_used >= 5
    fresh = mem.space(train, heldout, new)
    assert abs(fresh.ct) < 1.5 and 0.8 < fresh.ratio < 1.25
    assert mem.verdict([copied, fresh]) == "copies" and mem.verdict([fresh, fresh]) == "novel"


def test_blends_of_training_images_sit_farther_than_new_images_which_is_no_copying(digits):
    """A blurry generator (the mean of two training digits) is underfitting: C_T far above 0, verdict novel."""
    images, train, heldout, _ = digits
    g = torch.Generator().manual_seed(1)
    a, b = torch.randperm(len(images), generator=g)[:2 * 180].chunk(2)
    blends = mem.space(train, heldout, mem.pixel_vectors(to_uint8((images[a] + images[b]) / 2)))
    assert blends.ct > 2 and mem.verdict([blends]) == "novel"


def test_without_held_out_images_there_is_no_c_t_and_the_verdict_is_uncertain(digits):
    images, train, _, _ = digits
    result = mem.memorization(train, train[:100], train, train[:100])
    assert result.verdict == "uncertain" and result.features.ct is None and "held-out" in result.features.why_no_ct
    assert result.values() == {}
    assert result.closest(3)[0][2] == 0.0  # the nearest pair of a copy is the image itself


def test_too_few_generated_images_per_cell_leave_c_t_missing_with_the_reason(digits):
    _, train, heldout, new = digits
    result = mem.space(train, heldout, new[:8])
    assert result.ct is None and f"{mem.MIN_PER_CELL} generated images" in result.why_no_ct


def test_c_ts_bootstrap_interval_holds_copies_below_the_line_and_new_images_around_zero(digits):
    """eval.bootstrap on C_T: the cells and distances fixed, each resample weighs the generated images' U scores by
    its draws; undrawn, the scores give C_T itself; the interval of copies lies below COPIES, that of new images of
    the same kind holds 0."""
    from bench.metrics.bootstrap import interval, resample_counts

    images, train, heldout, new = digits
    for generated, inside in ((noisy_copies(images, 180, 0.05), False), (new, True)):
        result = mem.space(train, heldout, generated)
        assert result.copying.ct(np.ones(len(generated)))[0] == pytest.approx(result.ct, abs=1e-9)
        low, high = interval(result.ct, result.copying.ct(resample_counts(len(generated), 300, 0)))
        assert low < result.ct < high
        assert (low < 0 < high) if inside else high < mem.COPIES, (low, high)
    assert scipy_u_of_u_counts()


def scipy_u_of_u_counts() -> bool:
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(0)
    generated, heldout = rng.normal(size=37).round(1), rng.normal(size=23).round(1)  # ties, as distances have
    return mem.u_counts(generated, heldout).sum() == mannwhitneyu(generated, heldout, alternative="less").statistic


def test_the_u_statistic_is_negative_when_generated_images_sit_closer():
    near, far = np.linspace(0, 1, 30), np.linspace(2, 3, 30)
    assert mem.mann_whitney_z(near, far) < -6 < 6 < mem.mann_whitney_z(far, near)
    assert abs(mem.mann_whitney_z(near, near)) < 0.1


def test_memorization_without_a_test_split_is_refused_before_training(tmp_path):
    photo_folder(tmp_path / "photos", n=20)
    (tmp_path / "s.yaml").write_text("""
name: mem
methods: [{dcgan: {width: 8}}]
datasets: [{name: folder, path: photos}]
seeds: 1
resolution: 16
batch_size: 8
budget: {steps: 2}
eval: {metrics: [fid, memorization], n_fake: 16}
""")
    line = one_line_error(bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path))
    assert "memorization holds out the test split" in line and "holdout: {test: 0.1}" in line


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Training crops, held-out crops and new crops of the same two photographs, and noisy copies of training
    crops, as PNG folders."""
    from PIL import Image

    root = tmp_path_factory.mktemp("memorization")
    train = photo_folder(root / "train", 60, seed=0)  # few: every image goes through Inception on 2 CPU cores
    photo_folder(root / "test", 40, seed=1)
    photo_folder(root / "new", 40, seed=2)
    (root / "copies").mkdir()
    rng = np.random.default_rng(3)
    for i, path in enumerate(sorted(train.iterdir())[:40]):
        pixels = np.asarray(Image.open(path)).astype(np.float32) + rng.normal(0, 4, (48, 48, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / "copies" / f"{i:03d}.png")
    return root


@pytest.mark.slow
@pytest.mark.inception
def test_bench_memorization_says_copies_for_noisy_copies_and_novel_for_held_out_photos(photos):
    copied = bench_cli("memorization", "copies", "train", "--test", "test", "--pairs", "pairs.png", cwd=photos)
    assert copied.returncode == 0 and "Traceback" not in copied.stderr, copied.stderr
    assert copied.stdout.startswith("verdict    copies: ")
    assert (photos / "pairs.png").stat().st_size > 0
    fresh = bench_cli("memorization", "new", "train", "--test", "test", "--json", cwd=photos)
    assert fresh.returncode == 0, fresh.stderr
    out = json.loads(fresh.stdout)
    assert out["verdict"] == "novel" and out["pixels"]["ct"] > mem.NOVEL and out["inception"]["ct"] > mem.NOVEL
    assert out["protocol"]["n_generated"] == 40 and out["protocol"]["n_test"] == 40
    assert len(out["closest"]) == 8 and out["authpct"] > 20


@pytest.mark.slow
@pytest.mark.inception
def test_a_trials_memorization_check_is_in_mlflow_with_its_closest_pairs(tmp_path):
    photo_folder(tmp_path / "photos", n=120)
    (tmp_path / "s.yaml").write_text("""
name: mem
methods: [{dcgan: {width: 8}}]
datasets: [{name: folder, path: photos, holdout: {test: 0.3}}]
seeds: 1
resolution: 16
batch_size: 16
budget: {steps: 20}
eval: {metrics: [fid, memorization], n_fake: 64}
log: {every: 10, samples_every: 1000, checkpoint_every: 1000}
""")
    ran = bench_cli("run", "s.yaml", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (run,) = mlflow_runs(tmp_path, "mem")
    assert {"ct", "ct_pixel", "nn_ratio", "nn_ratio_pixel", "ct_final"} <= set(run.data.metrics)
    assert run.data.tags["eval.memorization_verdict"] in mem.VERDICTS
    assert run.data.tags["eval.memorization_heldout"].endswith(":test")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert "memorization/closest.png" in {f.path for f in client.list_artifacts(run.info.run_id, "memorization")}
    report = bench_cli("report", "--suite", "mem", "--out", "report", "--format", "md,csv", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report" / "README.md").read_text()
    assert "## Memorisation: did a model copy its training set?" in page and "memorization_" in page
    assert list((tmp_path / "report" / "figures").glob("memorization_*.png"))
