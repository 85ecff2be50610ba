"""Feature spaces other than Inception (bench/metrics/spaces.py): an encoder bench trains (`bench encoder train`,
`encoder:PATH`) and DINOv2 from a local file (`dinov2:PATH`, refused unless official or declared own). Every metric
runs in the chosen space, and the records name it with its hash; Inception stays the default, keys unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.data import load_dataset
from bench.metrics import memorization as mem
from bench.metrics.base import Reference
from bench.metrics.evaluate import evaluate_images
from bench.metrics.features import to_uint8
from bench.metrics.inception import file_sha256
from bench.metrics.spaces import parse_space
from bench.suite import EvalSpec
from tests.conftest import REPO, bench_cli
from tests.support import RecordingTracker, make_trial, mlflow_runs, one_line_error

DIGITS_ENCODER = REPO / "bench" / "references" / "encoders" / "digits.pt"


def png_folder(folder: Path, images: torch.Tensor) -> Path:
    """(N, 1, H, W) images in [-1, 1] as grey PNGs."""
    from PIL import Image

    folder.mkdir(parents=True)
    for i, image in enumerate(to_uint8(images)):
        Image.fromarray(image[0].numpy()).save(folder / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def digit_folders(tmp_path_factory):
    """Digits as PNG folders at 16 px: 300 training images, 150 test images, and noisy copies of 150 training ones."""
    root = tmp_path_factory.mktemp("digits")
    train = load_dataset("digits", 16, "train").images
    test = load_dataset("digits", 16, "test").images
    g = torch.Generator().manual_seed(0)
    copies = (train[:150] + 0.05 * torch.randn(train[:150].shape, generator=g)).clamp(-1, 1)
    for name, images in (("train", train[:300]), ("test", test[:150]), ("copies", copies)):
        png_folder(root / name, images)
    return root


@pytest.mark.slow
def test_bench_encoder_train_writes_a_classifier_well_above_chance_and_prints_its_sha256(tmp_path):
    ran = bench_cli("encoder", "train", "digits", "--steps", "60", "--resolution", "8", "--out", "enc.pt",
                    cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    lines = dict(line.split(None, 1) for line in ran.stdout.splitlines())
    assert lines["sha256"] == file_sha256(tmp_path / "enc.pt")
    accuracy = float(lines["accuracy"].split()[0])
    assert accuracy > 0.3  # chance is 0.1 on ten classes (0.43 here after 60 steps; 0.87 after 300)
    again = bench_cli("encoder", "train", "digits", "--steps", "60", "--resolution", "8", "--out", "again.pt",
                      cwd=tmp_path)
    assert again.returncode == 0 and file_sha256(tmp_path / "again.pt") == lines["sha256"]  # seeded: same bytes


def test_the_committed_digits_encoder_tells_real_digits_from_noise_and_shifted_digits(tmp_path):
    space = parse_space(f"encoder:{DIGITS_ENCODER}")
    train = Reference("digits", "train", 16)
    test = load_dataset("digits", 16, "test").images
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(test.shape, generator=g) * 2 - 1
    shifted = torch.roll(test, shifts=(4, 4), dims=(2, 3))

    def fd(images):
        result = evaluate_images(images, train, metrics=("fid", "kid"), cache_dir=tmp_path, features=space)
        return result.values["fid"], result.protocol

    real, protocol = fd(test)
    assert protocol["features"] == "encoder" and protocol["feature_dim"] == "64"
    assert protocol["weights_sha256"] == file_sha256(DIGITS_ENCODER)
    assert real < 0.1 * fd(shifted)[0] and real < 0.02 * fd(noise)[0]


def test_bench_fid_in_the_encoders_space_names_the_space_and_its_hash(digit_folders):
    out = bench_cli("fid", "train", "test", "--features", f"encoder:{DIGITS_ENCODER}", "--kid", "--json",
                    cwd=digit_folders)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["protocol"]["features"] == "encoder"
    assert result["protocol"]["weights_sha256"] == file_sha256(DIGITS_ENCODER)
    assert result["protocol"]["features_preprocessing"].startswith("16px grey")
    assert 0 <= result["fid"] < 50 and "kid" in result  # 300 against 150 images: biased up (noise: ~1800)


def test_bench_memorization_in_the_encoders_space_finds_noisy_copies(digit_folders):
    out = bench_cli("memorization", "copies", "train", "--test", "test", "--features", f"encoder:{DIGITS_ENCODER}",
                    "--json", cwd=digit_folders)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["protocol"]["features"] == "encoder" and "inception" not in result
    assert result["encoder"]["ct"] < mem.COPIES and result["verdict"] == "copies"


def test_a_file_that_is_no_bench_encoder_is_refused_in_one_line(tmp_path, digit_folders):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    line = one_line_error(bench_cli("fid", "train", "test", "--features", f"encoder:{tmp_path / 'other.pt'}",
                                    cwd=digit_folders))
    assert "not a bench encoder file" in line and "bench encoder train" in line


def test_inception_stays_the_default_and_leaves_trial_keys_as_they_were():
    plain = make_trial("dcgan", 16)
    named = plain.model_copy(update={"eval": EvalSpec(metrics=[], features="inception")})
    encoded = plain.model_copy(update={"eval": EvalSpec(metrics=[], features="encoder:x.pt")})
    assert "features" not in plain.identity()["eval"]
    assert named.key == plain.key != encoded.key



def test_the_new_settings_left_at_their_defaults_leave_records_as_they_were():
    """Unset, `features`, `features_own_weights` and `bootstrap` add no MLflow param and Inception adds no
    eval.features tag: a report of new Inception trials reads as one of trials recorded before they existed."""
    from bench.evaluation import _record
    from bench.metrics.base import EvalResult

    spelled = EvalSpec(metrics=[], features="inception", features_own_weights=False, bootstrap=0)
    assert spelled == EvalSpec(metrics=[])
    flat = make_trial("dcgan", 16).model_copy(update={"eval": spelled}).flat()
    assert not {"eval.features", "eval.features_own_weights", "eval.bootstrap"} & set(flat), sorted(flat)

    class Tags(RecordingTracker):
        def __init__(self):
            super().__init__()
            self.tags = {}

        def set_tags(self, tags):
            self.tags.update(tags)

    tracker = Tags()
    _record(EvalResult(values={"fid": 1.0}, protocol={"features": "inception", "feature_dim": "2048"}), tracker, 1)
    assert tracker.tags == {"eval.feature_dim": "2048"}
    _record(EvalResult(values={"fid": 1.0}, protocol={"features": "encoder", "feature_dim": "64"}), tracker, 1)
    assert tracker.tags["eval.features"] == "encoder"

SUITE = """
name: spaces
methods: [{{dcgan: {{width: 8}}}}]
datasets: [digits]
seeds: 1
resolution: 16
batch_size: 16
budget: {{steps: 4}}
eval: {{metrics: [fid, kid], n_fake: 64, n_real: 128, features: "{features}"{more}}}
log: {{every: 2, samples_every: 1000, checkpoint_every: 1000}}
"""


def test_a_suite_in_the_encoders_space_logs_fd_and_kid_with_the_space_in_its_tags(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE.format(features=f"encoder:{DIGITS_ENCODER}", more=""))
    ran = bench_cli("run", "s.yaml", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (run,) = mlflow_runs(tmp_path, "spaces")
    assert {"fid", "kid_mean", "fid_final"} <= set(run.data.metrics)
    tags = run.data.tags
    assert tags["eval.features"] == "encoder" and tags["eval.weights_sha256"] == file_sha256(DIGITS_ENCODER)
    assert tags["eval.feature_dim"] == "64" and tags["eval.features_file"] == "bench/references/encoders/digits.pt"


def tiny_vit(path: Path) -> Path:
    """A random-initialised ViT of DINOv2's shape (patch 14, 64 wide, one block), its state dict saved to `path`."""
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=224, num_classes=0,
                            embed_dim=64, depth=1, num_heads=1)
    torch.save(vit.state_dict(), path)
    return path


def test_dinov2_weights_that_are_not_official_are_refused_in_one_line_with_the_override_named(tmp_path):
    tiny_vit(tmp_path / "vit.pth")
    (tmp_path / "s.yaml").write_text(SUITE.format(features="dinov2:vit.pth", more=""))
    line = one_line_error(bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path))
    assert "not an official DINOv2 checkpoint" in line and "eval.features_own_weights: true" in line
    line = one_line_error(bench_cli("fid", "digits:test", "digits", "--features", "dinov2:vit.pth", cwd=tmp_path))
    assert "not an official DINOv2 checkpoint" in line and "--own-weights" in line


def test_own_dinov2_weights_run_when_declared_and_the_record_says_own(tmp_path):
    tiny_vit(tmp_path / "vit.pth")
    images = load_dataset("digits", 16, "test").images[:24]
    result = evaluate_images(images, Reference("digits", "train", 16, n=32), metrics=("fid", "kid"),
                             cache_dir=tmp_path, features=parse_space(f"dinov2:{tmp_path / 'vit.pth'}", True))
    p = result.protocol
    assert p["features"] == "dinov2" and p["features_weights"] == "own" and p["feature_dim"] == "64"
    assert p["features_preprocessing"] == "224px bicubic antialias, ImageNet mean/std, CLS token"
    assert np.isfinite(result.values["fid"]) and result.values["fid"] > 0
    (tmp_path / "s.yaml").write_text(SUITE.format(features="dinov2:vit.pth", more=", features_own_weights: true"))
    assert bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path).returncode == 0


def test_an_unlabelled_folder_gets_a_self_supervised_encoder_whose_features_differ_by_image(tmp_path):
    from bench.metrics.encoder import load_encoder
    from tests.support import photo_folder

    photo_folder(tmp_path / "photos", n=40)
    ran = bench_cli("encoder", "train", "photos", "--steps", "5", "--resolution", "8", "--out", "ssl.pt",
                    cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "simclr" in ran.stdout and "accuracy" not in ran.stdout
    encoder = load_encoder(tmp_path / "ssl.pt")
    assert encoder.trained["objective"] == "simclr" and encoder.net.config.classes == 0
    feats = encoder.net(encoder.preprocess(torch.randint(0, 256, (4, 3, 12, 12), dtype=torch.uint8)))
    assert feats.shape == (4, 64) and feats.std(0).min() > 0


def test_an_unknown_feature_space_is_one_line(tmp_path):
    line = one_line_error(bench_cli("fid", "digits:test", "digits", "--features", "clip:x.pt", cwd=tmp_path))
    assert "use inception, encoder:PATH" in line


# A further feature space (eval.also_features, --also-features): the same generated images' FD in it, beside
# every metric of the primary space, which it leaves as it was.

@pytest.mark.slow
@pytest.mark.inception
def test_fd_in_a_further_space_is_that_spaces_fid_and_leaves_the_inception_numbers_as_they_were(tmp_path):
    images = load_dataset("digits", 16, "test").images[:24]
    reference = Reference("digits", "train", 16, n=32)
    shipped = parse_space("encoder:digits")  # a name bench ships: bench/references/encoders/digits.pt
    assert shipped.path == DIGITS_ENCODER
    both = evaluate_images(images, reference, metrics=("fid", "kid"), cache_dir=tmp_path, also=[shipped],
                           bootstrap=50)
    inception = evaluate_images(images, reference, metrics=("fid", "kid"), cache_dir=tmp_path, bootstrap=50)
    encoder = evaluate_images(images, reference, metrics=("fid",), cache_dir=tmp_path, features=shipped,
                              bootstrap=50)
    assert {k: v for k, v in both.values.items() if not k.startswith("fd_")} == inception.values
    assert both.values["fd_encoder"] == encoder.values["fid"] > 0
    assert (both.values["fd_encoder_ci_low"], both.values["fd_encoder_ci_high"]) == \
        (encoder.values["fid_ci_low"], encoder.values["fid_ci_high"])
    assert both.protocol["features"] == "inception"
    assert both.protocol["fd_encoder.weights_sha256"] == file_sha256(DIGITS_ENCODER)
    assert both.protocol["fd_encoder.n_fake"] == "24" and both.protocol["fd_encoder.n_real"] == "32"
    assert "kid_encoder_mean" not in both.values  # FD only: KID's kernel is scaled for Inception's features


def test_a_further_space_of_the_primarys_kind_or_two_of_one_kind_are_one_line(tmp_path):
    line = one_line_error(bench_cli("fid", "digits:test", "digits", "--also-features", "encoder:digits,encoder:x.pt",
                                    cwd=tmp_path))
    assert "at most one space of each kind" in line
    line = one_line_error(bench_cli("fid", "digits:test", "digits", "--also-features", "inception", cwd=tmp_path))
    assert "not the primary's (inception)" in line
    line = one_line_error(bench_cli("fid", "digits:test", "digits", "--also-features", "encoder:nothing.pt",
                                    cwd=tmp_path))
    assert "nothing.pt: no such file" in line and "bench encoder train" in line
    (tmp_path / "s.yaml").write_text(SUITE.format(features="inception", more=", also_features: [inception]"))
    line = one_line_error(bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path))
    assert "repeats the kind of features (inception)" in line
    (tmp_path / "s.yaml").write_text(SUITE.format(features="inception", more=", also_features: [encoder:nothing.pt]"))
    line = one_line_error(bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path))
    assert "eval.features" in line and "no such file" in line


@pytest.mark.slow
def test_dinov2_as_a_further_space_needs_the_same_override(tmp_path):
    tiny_vit(tmp_path / "vit.pth")
    (tmp_path / "s.yaml").write_text(SUITE.format(features=f"encoder:{DIGITS_ENCODER}",
                                                  more=", also_features: [dinov2:vit.pth]"))
    line = one_line_error(bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path))
    assert "not an official DINOv2 checkpoint" in line
    (tmp_path / "s.yaml").write_text(SUITE.format(features=f"encoder:{DIGITS_ENCODER}",
                                                  more=", also_features: [dinov2:vit.pth], "
                                                       "features_own_weights: true"))
    ran = bench_cli("run", "s.yaml", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (run,) = mlflow_runs(tmp_path, "spaces")
    assert {"fid", "kid_mean", "fd_dinov2", "fd_dinov2_final"} <= set(run.data.metrics)
    tags = run.data.tags
    assert tags["eval.features"] == "encoder" and tags["eval.fd_dinov2.features_weights"] == "own"
    assert tags["eval.fd_dinov2.feature_dim"] == "64"
    report = bench_cli("report", "--suite", "spaces", "--format", "md,csv", "--out", "rep", cwd=tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    page = (tmp_path / "rep" / "README.md").read_text()
    assert "## A second feature space: FD in DINOv2's space" in page
    assert "| eval.fd\\_dinov2.features\\_weights | own |" in page
    protocol = (tmp_path / "rep" / "tables" / "protocol.csv").read_text()
    assert f"eval.fd_dinov2.weights_sha256,{file_sha256(tmp_path / 'vit.pth')}" in protocol
