"""Held-out splits by a recorded rule (bench/data/holdout.py) and a best step chosen on a split it is not scored on
(eval.select_split)."""

from pathlib import Path

import pytest
import torch

from bench import results
from bench.data import load_dataset
from bench.data.holdout import assign, position
from tests.conftest import bench_cli, sqlite_store
from tests.support import mlflow_runs


def digit_folder(folder: Path, names) -> Path:
    from PIL import Image

    from bench.metrics.features import to_uint8

    folder.mkdir(parents=True, exist_ok=True)
    images = to_uint8(load_dataset("digits", 16).images[:200])
    for i, name in enumerate(names):
        Image.fromarray(images[i % 200][0].numpy()).save(folder / f"{name}.png")
    return folder


def ids_of(folder: Path, split: str, **shares) -> list[str]:
    return load_dataset("folder", 16, split, path=str(folder), holdout=shares).ids


def test_the_splits_of_a_folder_are_disjoint_cover_it_and_follow_the_shares(tmp_path):
    folder = digit_folder(tmp_path / "f", [f"{i:03d}" for i in range(400)])
    parts = {s: ids_of(folder, s, validation=0.2, test=0.1) for s in ("train", "validation", "test")}
    assert sum(map(len, parts.values())) == 400 and len(set().union(*map(set, parts.values()))) == 400
    assert 50 < len(parts["validation"]) < 110 and 20 < len(parts["test"]) < 65
    expected = assign([f"{i:03d}.png" for i in range(400)], {"validation": 0.2, "test": 0.1})
    assert sorted(parts["validation"]) == sorted(f"{i:03d}.png" for i, s in enumerate(expected) if s == "validation")


def test_adding_files_moves_no_image_between_splits(tmp_path):
    folder = digit_folder(tmp_path / "f", [f"{i:03d}" for i in range(100)])
    before = {s: set(ids_of(folder, s, validation=0.3)) for s in ("train", "validation")}
    digit_folder(folder, [f"new{i:03d}" for i in range(50)])
    after = {s: set(ids_of(folder, s, validation=0.3)) for s in ("train", "validation")}
    for split in before:
        assert before[split] <= after[split]  # every old image kept its split
    assert position("000.png") == position("000.png") and 0 <= position("x") < 1


def test_a_shipped_dataset_holds_out_validation_from_train_and_keeps_its_own_test():
    train = load_dataset("digits", 8, "train", holdout={"validation": 0.2})
    validation = load_dataset("digits", 8, "validation", holdout={"validation": 0.2})
    plain_train, test = load_dataset("digits", 8, "train"), load_dataset("digits", 8, "test")
    assert len(train) + len(validation) == len(plain_train) and 200 < len(validation) < 380
    assert torch.equal(load_dataset("digits", 8, "test", holdout={"validation": 0.2}).images, test.images)
    joined = torch.cat([train.images, validation.images]).flatten(1)
    assert len(torch.unique(joined, dim=0)) == len(torch.unique(plain_train.images.flatten(1), dim=0))


def test_a_subset_keeps_its_share_of_train_nested_and_leaves_the_held_out_images_alone(tmp_path):
    """The small-data studies' 10%: a hash of each identity picks it, so 10% lies inside 50%, and a folder's carved
    test split is the same whatever share of train is kept."""
    full, half, tenth = (load_dataset("digits", 8, "train", **({"subset": s} if s else {})) for s in (None, 0.5, 0.1))
    assert 0.08 * len(full) < len(tenth) < 0.14 * len(full) and set(tenth.ids) <= set(half.ids)
    assert torch.equal(load_dataset("digits", 8, "test", subset=0.1).images, load_dataset("digits", 8, "test").images)
    folder = digit_folder(tmp_path / "f", [f"{i:03d}" for i in range(200)])
    test = {share: load_dataset("folder", 16, "test", path=str(folder), holdout={"test": 0.2},
                                **({"subset": share} if share else {})).ids for share in (None, 0.3)}
    assert test[None] == test[0.3]
    train = load_dataset("folder", 16, "train", path=str(folder), holdout={"test": 0.2}, subset=0.3).ids
    assert not set(train) & set(test[None]) and 25 < len(train) < 75


SUITE = """
name: held
methods: [{{dcgan: {{width: 8}}}}]
datasets: [{dataset}]
seeds: 1
resolution: 16
batch_size: 20
budget: {{steps: 20}}
eval: {eval}
log: {{every: 5, samples_every: 1000, checkpoint_every: 1000}}
"""


@pytest.mark.parametrize("dataset, eval_, message", [
    ("{name: digits, holdout: {test: 0.1}}", "{metrics: []}", "has a test split of its own"),
    ("{name: digits, holdout: {validation: 1.5}}", "{metrics: []}", "holdout.validation is 1.5"),
    ("{name: digits, holdout: {valid: 0.1}}", "{metrics: []}", "holdout is a mapping of validation"),
    ("{name: digits, subset: 0}", "{metrics: []}", "subset is 0; give the share of the training split"),
    ("digits", "{metrics: [fid], select_split: validation}", "no split 'validation'"),
    ("{name: digits, holdout: {validation: 0.2}}", "{metrics: [fid], reference_split: validation, "
                                                   "select_split: validation}", "also the reference split"),
])
def test_a_split_that_cannot_work_is_one_line_and_exit_2(tmp_path, dataset, eval_, message):
    (tmp_path / "held.yaml").write_text(SUITE.format(dataset=dataset, eval=eval_))
    result = bench_cli("run", "held.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_the_best_step_is_chosen_on_the_selection_split_and_scored_on_the_reference():
    evaluations = [{"step": 5, "fid": 40.0, "fid_select": 30.0}, {"step": 10, "fid": 35.0, "fid_select": 33.0},
                   {"step": 15, "fid": 38.0, "fid_select": 29.0}]
    summary = results.summaries(evaluations)
    assert (summary["fid_best"], summary["fid_best_step"], summary["fid_final"]) == (38.0, 15, 38.0)
    assert results.objective_value(evaluations, "fid_best") == 38.0
    assert results.summaries([{k: v for k, v in e.items() if k != "fid_select"} for e in evaluations])["fid_best"] \
        == 35.0  # without a selection split: the lowest FID, as before


@pytest.mark.slow
def test_a_trial_chooses_on_validation_scores_on_test_and_the_report_says_so(tmp_path, tiny_inception):
    from mlflow.tracking import MlflowClient

    folder = digit_folder(tmp_path / "photos", [f"{i:03d}" for i in range(160)])
    text = SUITE.format(dataset=f"{{name: folder, path: {folder}, holdout: {{validation: 0.25, test: 0.25}}}}",
                        eval="{every: 5, n_fake: 24, metrics: [fid], reference_split: test, "
                             "select_split: validation}")
    (tmp_path / "held.yaml").write_text(text)
    uri = sqlite_store(tmp_path)
    ran = bench_cli("run", "held.yaml", "--tracking-uri", uri, cwd=tmp_path, env={"BENCH_CACHE": str(tmp_path / "c")})
    assert ran.returncode == 0, ran.stderr
    (run,) = mlflow_runs(uri, "held")
    client = MlflowClient(uri)
    fid = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "fid")}
    chosen = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "fid_select")}
    assert sorted(fid) == sorted(chosen) == [5, 10, 15, 20] and fid != chosen
    step = min(chosen, key=lambda s: (chosen[s], s))
    assert run.data.metrics["fid_best_step"] == step and run.data.metrics["fid_best"] == fid[step]
    tags = run.data.tags
    assert tags["eval.reference"] == "folder:test" and tags["eval.select_reference"] == "folder:validation"
    train_n = len(load_dataset("folder", 16, "train", path=str(folder), holdout={"validation": 0.25, "test": 0.25}))
    assert int(tags["eval.n_real"]) + int(tags["eval.select_n_real"]) + train_n == 160
    report = bench_cli("report", "--suite", "held", "--tracking-uri", uri, "--out", "r", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r" / "README.md").read_text(encoding="utf-8")
    assert "chosen on folder:validation, scored on folder:test" in page
