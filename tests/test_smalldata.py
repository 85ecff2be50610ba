"""Small data: DiffAugment, LeCam and consistency regularisation as hyperparameters of every adversarial method,
applied by the shared step (bench/methods/adversarial.py) and checked against hand computations."""


import pytest
import torch

from bench.methods import get_method
from bench.methods.consistency import flip_translate
from bench.methods.diffaugment import OPS, color, cutout, diffaugment, parse_policy, translation
from bench.methods.lecam import LeCam
from bench.train import Trainer
from tests.conftest import bench_cli
from tests.support import RecordingTracker, logged_losses, make_trial, photo_folder, random_data

CPU = torch.device("cpu")
ADVERSARIAL = ["dcgan", "lsgan", "wgan", "wgan-gp", "vanilla", "sngan", "cdcgan", "acgan", "wgan-gp-acgan"]


def images(n=4, channels=3, size=8, seed=0):
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


# the transforms ----------------------------------------------------------------------------------------------

def test_translation_moves_each_image_by_its_own_integer_shift_and_fills_zeros():
    x = images(6, 2, 8)
    out = translation(x, torch.Generator().manual_seed(3))
    draw = torch.Generator().manual_seed(3)  # the same draws, in the same order: rows then columns
    dy = torch.randint(-1, 2, (6, 1, 1, 1), generator=draw).flatten().tolist()
    dx = torch.randint(-1, 2, (6, 1, 1, 1), generator=draw).flatten().tolist()
    assert any(dy) and any(dx)
    for b in range(6):
        expected = torch.zeros(2, 8, 8)
        for i in range(8):
            for j in range(8):
                if 0 <= i - dy[b] < 8 and 0 <= j - dx[b] < 8:
                    expected[:, i, j] = x[b, :, i - dy[b], j - dx[b]]
        assert torch.equal(out[b], expected), b


def test_cutout_zeroes_one_square_of_half_the_side_per_image_clipped_at_the_border():
    out = cutout(torch.ones(64, 1, 8, 8), torch.Generator().manual_seed(0))
    holes = (out == 0).squeeze(1)
    sizes = holes.flatten(1).sum(1)
    assert sizes.max() == 16 and sizes.min() >= 4 and (sizes < 16).any()  # 4x4, smaller where it hits a border
    for hole in holes:  # one axis-aligned rectangle
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert hole.sum() == len(rows) * len(cols) and rows.diff().eq(1).all() and cols.diff().eq(1).all()


def test_color_keeps_shapes_and_moves_brightness_saturation_and_contrast_per_image():
    x = images(32, 3, 8)
    out = color(x, torch.Generator().manual_seed(1))
    shift = (out - x).mean(dim=(1, 2, 3))
    assert out.shape == x.shape and shift.std() > 0.1  # each image its own draw


@pytest.mark.parametrize("op", OPS)
def test_every_op_is_differentiable_and_its_gradient_reaches_the_pixels(op):
    x = images().requires_grad_()
    diffaugment(x, (op,), torch.Generator().manual_seed(0)).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_a_policy_names_known_ops_only():
    assert parse_policy("translation, cutout") == ("translation", "cutout")
    with pytest.raises(ValueError, match="unknown op 'rotate'"):
        parse_policy("color,rotate")


def test_bcr_transform_flips_about_half_and_translates():
    x = images(200, 1, 8)
    out = flip_translate(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)


def test_lecam_penalty_is_the_papers_formula_and_its_averages_decay_after_the_start():
    lecam = LeCam(decay=0.9, start=2)
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    lecam.update(real, fake, step=0)
    assert lecam.real == 2.0 and lecam.fake == -0.5  # before the start: the current means
    lecam.update(torch.tensor([4.0]), torch.tensor([0.5]), step=2)
    assert lecam.real == pytest.approx(0.9 * 2 + 0.1 * 4) and lecam.fake == pytest.approx(0.9 * -0.5 + 0.1 * 0.5)
    r, f = torch.tensor([2.0, -1.0]), torch.tensor([3.0, 1.0])
    expected = (torch.relu(r - lecam.fake) ** 2).mean() + (torch.relu(lecam.real - f) ** 2).mean()
    assert lecam.penalty(r, f) == pytest.approx(float(expected))


# in the shared step ------------------------------------------------------------------------------------------

def seen_by_d(method: str, steps: int = 2, **params):
    """Every batch D scored during `steps` steps, in order, with the phase (D or G step) it was scored in."""
    trial = make_trial(method, 16, steps=steps, **params)
    trainer = Trainer(trial, random_data(1, 16, n=32), CPU, tracker=RecordingTracker())
    seen, real_method = [], trainer.method.discriminate

    def record(d, x, labels):
        seen.append(x.detach().clone())
        return real_method(d, x, labels)

    trainer.method.discriminate = record
    trainer.run()
    return seen, trainer


def has_cutout_square(x: torch.Tensor) -> torch.Tensor:
    """Per image: at least 4 pixels exactly 0 in every channel (random images in (-1, 1) have none)."""
    return ((x == 0).all(dim=1).flatten(1).sum(1) >= 4)


def test_diffaugment_transforms_every_d_input_real_and_fake_in_the_d_and_the_g_step():
    seen, _ = seen_by_d("dcgan", augment="diffaugment", diffaugment_policy="cutout")
    assert len(seen) == 2 * 3  # per step: real and fake in the D step, fake in the G step
    assert all(has_cutout_square(x).all() for x in seen)
    plain, _ = seen_by_d("dcgan")
    assert not any(has_cutout_square(x).any() for x in plain)


def test_without_augmentation_d_sees_the_batches_themselves_and_the_numbers_do_not_move():
    from tests.support import make_trial as plain_trial

    trial = plain_trial("dcgan", 16, steps=3)
    explicit = plain_trial("dcgan", 16, steps=3, augment="none", lecam=0.0, bcr=0.0, zcr_d=0.0, zcr_g=0.0)
    assert explicit.key == trial.key  # defaults stay out of the trial's key
    runs = []
    for t in (trial, explicit):
        tracker = RecordingTracker()
        Trainer(t, random_data(1, 16), CPU, tracker=tracker).run()
        runs.append(tracker.metrics)
    assert [{k: v for k, v in m.items() if k != "images_per_s"} for _, m in runs[0]] == \
        [{k: v for k, v in m.items() if k != "images_per_s"} for _, m in runs[1]]


@pytest.mark.parametrize("method", ADVERSARIAL)
def test_every_adversarial_method_trains_with_all_of_them_and_logs_their_terms(method):
    tracker = RecordingTracker()
    trial = make_trial(method, 16, steps=3, augment="diffaugment", lecam=0.3, lecam_start=1, bcr=10.0,
                       zcr_d=5.0, zcr_g=0.5)
    Trainer(trial, random_data(1, 16), CPU, tracker=tracker).run()
    last = tracker.metrics[-1][1]
    for name in ("loss_lecam", "loss_bcr", "loss_zcr", "loss_zcr_g"):
        assert name in last and last[name] >= 0 and last[name] == last[name], (method, name)
    assert last["loss_zcr_g"] > 0  # G(z) and G(z + dz) differ


def test_the_terms_enter_the_losses_with_their_weights():
    base = RecordingTracker()
    Trainer(make_trial("dcgan", 16, steps=1, bcr=1.0), random_data(1, 16), CPU, tracker=base).run()
    heavy = RecordingTracker()
    Trainer(make_trial("dcgan", 16, steps=1, bcr=1000.0), random_data(1, 16), CPU, tracker=heavy).run()
    (_, a), (_, b) = base.metrics[0], heavy.metrics[0]
    assert a["loss_bcr"] == b["loss_bcr"]  # the first step's term does not depend on its weight ...
    assert b["loss_d"] - a["loss_d"] == pytest.approx(999.0 * a["loss_bcr"], rel=1e-4)  # ... D's loss does


def test_a_trial_with_every_regulariser_resumes_bit_identically(tmp_path):
    params = dict(augment="diffaugment", lecam=0.3, lecam_start=2, bcr=10.0, zcr_d=5.0, zcr_g=0.5)
    data = random_data(1, 16)
    trial = make_trial("dcgan", 16, steps=8, **params)
    full = RecordingTracker()
    Trainer(trial, data, CPU, tracker=full).run()
    cut = trial.model_copy(update={"log": trial.log.model_copy(update={"checkpoint_every": 3})})
    Trainer(cut, data, CPU, run_dir=tmp_path).run(stop_after=5)
    resumed = RecordingTracker()
    trainer = Trainer(cut, data, CPU, run_dir=tmp_path, tracker=resumed)
    trainer.run()

    assert logged_losses(resumed.metrics) == logged_losses(full.metrics)[3:]
    assert trainer.method.lecam.real is not None  # the averages came back from the checkpoint


def test_lecam_averages_follow_d_and_are_saved_in_the_checkpoint():
    trial = make_trial("dcgan", 16, steps=4, lecam=0.3, lecam_start=0)
    trainer = Trainer(trial, random_data(1, 16), CPU, tracker=RecordingTracker())
    trainer.run()
    state = trainer.state_dict()["method_state"]["lecam"]
    assert torch.isfinite(state["real"]) and torch.isfinite(state["fake"]) and state["real"] != state["fake"]


# as a user meets them ----------------------------------------------------------------------------------------

SUITE = """
name: small
methods: [{{dcgan: {{width: 8{extra}}}}}]
datasets: [digits]
seeds: 1
resolution: 16
batch_size: 32
budget: {{steps: 2}}
eval: {{metrics: []}}
{grid}
"""


def test_a_grid_over_augment_is_one_trial_each_with_its_own_key(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE.format(extra="", grid="grid: {augment: [none, diffaugment]}"))
    result = bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "augment=diffaugment" in result.stdout and result.stdout.count("dcgan") >= 2


@pytest.mark.parametrize("extra, message", [
    (", diffaugment_policy: 'color,rotate'", "unknown op 'rotate'"),
    (", augment: mixup", "augment"),
    (", augment: ada, objective: wgan", "no fixed centre"),
    (", lecam: -1", "lecam"),
])
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path, extra, message):
    (tmp_path / "s.yaml").write_text(SUITE.format(extra=extra, grid=""))
    result = bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_methods_outside_the_adversarial_family_refuse_them_in_one_line(tmp_path):
    for method in ("infogan", "stylegan", "cyclegan", "pix2pix"):
        assert "augment" not in get_method(method).Hyper.model_fields, method
    text = SUITE.format(extra="", grid="").replace("dcgan: {width: 8}", "infogan: {width: 8, augment: diffaugment}")
    (tmp_path / "s.yaml").write_text(text)
    result = bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2 and "augment" in result.stderr and result.stderr.count("\n") == 1


def test_bench_ls_methods_name_lists_a_methods_hyperparameters_with_the_new_ones():
    result = bench_cli("ls", "methods", "wgan-gp", cwd=".")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert lines["augment"].split()[1] == "none" and lines["lecam"].split()[1] == "0.0"
    assert lines["critic_steps"].split()[1] == "5" and "diffaugment" in lines["augment"]


# ADA ---------------------------------------------------------------------------------------------------------

def test_ada_moves_p_by_the_real_images_seen_toward_its_target_and_clamps_it():
    from bench.methods.ada import AdaptiveAugment

    ada = AdaptiveAugment(target=0.6, interval=4, kimg=1.0)
    for _ in range(3):
        ada.observe(torch.ones(16))
    assert ada.p == 0.0  # no adjustment before `interval` batches
    ada.observe(torch.ones(16))
    assert ada.p == pytest.approx(64 / 1000) and ada.rt == 1.0  # 64 real images, all on the real side
    for _ in range(4):
        ada.observe(torch.tensor([1.0] * 8 + [-1.0] * 8))  # r_t = 0 < 0.6: p falls by the same image rate
    assert ada.p == pytest.approx(0.0, abs=1e-12) and ada.rt == 0.0
    for _ in range(8):
        ada.observe(-torch.ones(16))
    assert ada.p == 0.0 and ada.images == 16 * 16  # clamped at 0
    ls = AdaptiveAugment(interval=1, kimg=1.0, centre=0.5)  # ls targets 0 and 1: 0.4 is on the fake side
    ls.observe(torch.full((10,), 0.4))
    assert ls.rt == -1.0 and ls.p == 0.0


def test_ada_at_p_zero_is_the_identity_and_at_p_one_changes_every_image_differentiably():
    from bench.methods.ada import AdaptiveAugment

    ada = AdaptiveAugment()
    x = images(8, 3, 16).requires_grad_()
    assert ada(x, torch.Generator().manual_seed(0)) is x
    ada.p = 1.0
    out = ada(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and ((out - x).abs().flatten(1).amax(1) > 1e-3).all()
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    gray = ada(images(8, 1, 16), torch.Generator().manual_seed(1))
    assert gray.shape == (8, 1, 16, 16) and torch.isfinite(gray).all()


@pytest.mark.slow
@pytest.mark.parametrize("critic_steps", [1, 5])
def test_ada_p_rises_on_a_tiny_set_at_the_image_rate_whatever_the_critic_steps(critic_steps):
    """16 digits memorised: D's outputs on real images sit above 0 (r_t > 0.6) and p rises; what moves it is the
    count of real images D saw, so 5 critic steps per G step move it 5x per G step, the same per image."""
    from bench.data import load_dataset

    digits = load_dataset("digits", 16, "train")
    tiny = type(digits)(digits.images[:16], digits.labels[:16], digits.classes)
    steps = 100 // critic_steps  # 100 real batches of 16 either way
    trial = make_trial("dcgan", 16, steps=steps, augment="ada", ada_kimg=2.0, critic_steps=critic_steps)
    trial = trial.model_copy(update={"batch_size": 16})
    tracker = RecordingTracker()
    trainer = Trainer(trial, tiny, CPU, tracker=tracker)
    trainer.run()
    ada = trainer.method.ada
    assert ada.images == 100 * 16
    p = [m["ada_p"] for _, m in tracker.metrics]
    assert p[-1] > 0.2 and ada.rt > 0.6 and p == sorted(p)
    assert ada.p <= 100 * 16 / 2000 + 1e-9  # at most every image's share of the kimg


def test_an_ada_trial_resumes_bit_identically_with_its_p(tmp_path):
    data = random_data(1, 16)
    trial = make_trial("dcgan", 16, steps=10, augment="ada", ada_interval=1, ada_kimg=0.05)
    full = RecordingTracker()
    Trainer(trial, data, CPU, tracker=full).run()
    cut = trial.model_copy(update={"log": trial.log.model_copy(update={"checkpoint_every": 4})})
    Trainer(cut, data, CPU, run_dir=tmp_path).run(stop_after=6)
    resumed = RecordingTracker()
    trainer = Trainer(cut, data, CPU, run_dir=tmp_path, tracker=resumed)
    trainer.run()

    assert logged_losses(resumed.metrics) == logged_losses(full.metrics)[4:]
    assert 0 < trainer.method.ada.p  # it had moved before the checkpoint and came back with it


def test_ada_with_a_wasserstein_critic_is_refused_in_one_line(tmp_path):
    text = SUITE.format(extra="", grid="").replace("dcgan: {width: 8}", "wgan-gp: {width: 8, augment: ada}")
    (tmp_path / "s.yaml").write_text(text)
    result = bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "augment: ada" in result.stderr and "no fixed centre" in result.stderr
    ok = SUITE.format(extra="", grid="").replace("dcgan: {width: 8}", "lsgan: {width: 8, augment: ada}")
    (tmp_path / "s.yaml").write_text(ok)
    assert bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("method", [m for m in ADVERSARIAL if "wgan" not in m])
def test_every_adversarial_method_without_a_wasserstein_critic_trains_with_ada_and_logs_p(method):
    tracker = RecordingTracker()
    trial = make_trial(method, 16, steps=3, augment="ada", ada_interval=1, lecam=0.3)
    trainer = Trainer(trial, random_data(1, 16), CPU, tracker=tracker)
    trainer.method.ada.p = 0.5  # the pipeline from the first step, every op drawn for about half the images
    trainer.run()
    last = tracker.metrics[-1][1]
    assert 0 < last["ada_p"] <= 1 and -1 <= last["ada_rt"] <= 1
    assert all(v == v and abs(v) < float("inf") for v in last.values())


@pytest.mark.slow
def test_a_grid_over_none_diffaugment_and_ada_trains_all_three_on_a_folder_of_photos(tmp_path):
    from tests.support import mlflow_runs

    folder = photo_folder(tmp_path / "photos")
    suite = f"""
name: photos
methods: [{{dcgan: {{width: 8, ada_interval: 1, ada_kimg: 0.5}}}}]
datasets: [{{name: folder, path: {folder}}}]
grid: {{augment: [none, diffaugment, ada]}}
seeds: 1
resolution: 16
batch_size: 20
budget: {{steps: 30}}
eval: {{metrics: []}}
log: {{every: 5, samples_every: 1000, checkpoint_every: 1000}}
"""
    (tmp_path / "photos.yaml").write_text(suite)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from tests.conftest import sqlite_store

    sqlite_store(tmp_path)
    ran = bench_cli("run", "photos.yaml", "--tracking-uri", uri, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    runs = mlflow_runs(uri, "photos")
    by_augment = {r.data.params.get("params.augment", "none"): r for r in runs}
    assert sorted(by_augment) == ["ada", "diffaugment", "none"] and all(r.info.status == "FINISHED" for r in runs)
    assert "ada_p" in by_augment["ada"].data.metrics and "ada_p" not in by_augment["none"].data.metrics
    from mlflow.tracking import MlflowClient

    p = [m.value for m in MlflowClient(uri).get_metric_history(by_augment["ada"].info.run_id, "ada_p")]
    assert p[-1] > 0  # 100 photos and 8-channel nets: D's outputs on the reals pass the target within 30 steps
    report = bench_cli("report", "--suite", "photos", "--tracking-uri", uri, "--out", "report", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "figures" / "ada_p_folder-path-photos.png").is_file()  # folder[path=photos]
    assert "ADA's p on folder" in (tmp_path / "report" / "README.md").read_text(encoding="utf-8")


# D's outputs on training and held-out real images -------------------------------------------------------------

def test_heldout_scores_log_ds_outputs_on_train_and_heldout_reals_without_moving_training():
    from bench.data import load_dataset

    train = load_dataset("digits", 16, "train", holdout={"validation": 0.2})
    held = load_dataset("digits", 16, "validation", holdout={"validation": 0.2})
    trial = make_trial("dcgan", 16, steps=6)
    watched = trial.model_copy(update={"log": trial.log.model_copy(update={"heldout_scores": True})})
    assert watched.key == trial.key  # a diagnostic: not part of the trial's identity
    plain, seen = RecordingTracker(), RecordingTracker()
    Trainer(trial, train, CPU, tracker=plain).run()
    Trainer(watched, train, CPU, tracker=seen, held_out=held).run()
    for (_, a), (_, b) in zip(plain.metrics, seen.metrics, strict=True):
        assert {k: v for k, v in a.items() if k != "images_per_s"} == \
            {k: v for k, v in b.items() if k not in ("images_per_s", "d_real_train", "d_real_heldout")}
    last = seen.metrics[-1][1]
    assert last["d_real_train"] == last["d_real_train"] and last["d_real_train"] != last["d_real_heldout"]


def test_heldout_scores_need_a_heldout_split_and_a_discriminator(tmp_path):
    base = SUITE.format(extra="", grid="") + "log: {every: 1, heldout_scores: true}\n"
    photos = photo_folder(tmp_path / "photos", n=40)
    folder_suite = base.replace("datasets: [digits]", f"datasets: [{{name: folder, path: {photos}}}]")
    (tmp_path / "s.yaml").write_text(folder_suite)
    result = bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "no held-out split; give it holdout: {validation: 0.1}" in result.stderr, result.stderr
    (tmp_path / "s.yaml").write_text(base.replace("dcgan: {width: 8}", "infogan: {width: 8}"))
    result = bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2 and "has no discriminator scores" in result.stderr, result.stderr
    (tmp_path / "s.yaml").write_text(base)
    assert bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path).returncode == 0  # digits: its test split


# augmentation leaking into samples ------------------------------------------------------------------------------

def test_the_leak_check_catches_cutout_squares_and_quarter_turns_and_not_real_images():
    from bench.data import load_dataset
    from bench.metrics.leak import LeakCheck, cutout_share, rotate

    real = load_dataset("digits", 16, "train").images
    check = LeakCheck(real[:600], torch.Generator().manual_seed(0))
    clean = check(real[600:1100])  # unseen real images: they score what the real baseline scores
    assert clean["leak_cutout"] == clean["leak_cutout_real"] == 0.0
    assert abs(clean["leak_rotation"] - clean["leak_rotation_real"]) < 0.1 and clean["leak_rotation_real"] < 0.3
    turned = check(rotate(real[600:1100], torch.randint(1, 4, (500,), generator=torch.Generator().manual_seed(1))))
    assert turned["leak_rotation"] > 0.8
    holes = cutout(real[600:700], torch.Generator().manual_seed(2))
    assert cutout_share(holes) == 1.0 and check(holes)["leak_cutout"] == 1.0
    assert cutout_share(torch.full((3, 1, 16, 16), 0.3)) == 0.0  # flat, but not cutout's fill


@pytest.mark.slow
def test_a_suite_asking_for_leak_logs_it_and_the_report_tables_it(tmp_path, tiny_inception):
    from tests.conftest import sqlite_store
    from tests.support import mlflow_runs

    text = SUITE.format(extra=", augment: diffaugment", grid="").replace(
        "eval: {metrics: []}", "eval: {n_fake: 64, n_real: 256, metrics: [fid, leak]}")
    (tmp_path / "s.yaml").write_text(text)
    uri = sqlite_store(tmp_path)
    ran = bench_cli("run", "s.yaml", "--tracking-uri", uri, cwd=tmp_path, env={"BENCH_CACHE": str(tmp_path / "c")})
    assert ran.returncode == 0, ran.stderr
    (run,) = mlflow_runs(uri, "small")
    metrics = run.data.metrics
    assert {"leak_rotation", "leak_cutout", "leak_rotation_real", "leak_rotation_final"} <= set(metrics)
    assert 0 <= metrics["leak_rotation"] <= 1 and metrics["leak_cutout_real"] == 0.0
    report = bench_cli("report", "--suite", "small", "--tracking-uri", uri, "--out", "r", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "Augmentation leak: do samples show D's augmentations?" in (tmp_path / "r" / "README.md").read_text()
