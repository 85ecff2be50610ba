"""The user's files damaged, and names that would escape their folders: a garbage or truncated MLflow store, a
report's table cut short or with a broken config, a NaN tolerance, a suite named `..`, a grid named x.jpg. Each is
met through the CLI and ends in one line with exit code 2 that names the file, never "a bug in bench"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, bench_cli, sqlite_store
from tests.support import one_line_error, tiny

QUICKSTART = REPO / "reports" / "quickstart"


def garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 20)


def truncated(path: Path) -> None:
    """A real MLflow store (schema, an experiment, a run) cut to a third, as a full disk or a bad copy leaves it."""
    from mlflow.tracking import MlflowClient

    uri = sqlite_store(path.parent, path.name)
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("tiny"), tags={"bench.suite": "tiny", "bench.method": "dcgan"})
    client.log_metric(run.info.run_id, "fid_final", 3.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("damage, cause", [(garbage, "file is not a database"),
                                           (truncated, "database disk image is malformed")])
def test_every_command_that_opens_a_damaged_store_names_it_in_one_line(tmp_path, damage, cause):
    tiny(tmp_path)
    damage(tmp_path / "damaged.db")
    uri = ["--tracking-uri", f"sqlite:///{tmp_path / 'damaged.db'}"]
    for args in (["report", *uri], ["report", "--suite", "tiny", *uri], ["reproduce", "0123abcd", *uri],
                 ["sample", "0123abcd", "--out", "x.png", *uri], ["run", "tiny.yaml", *uri]):
        line = one_line_error(bench_cli(*args, cwd=tmp_path))
        assert line.startswith(f"error: the MLflow store {tmp_path / 'damaged.db'} cannot be read ({cause}); "
                               "restore it"), (args, line)
        assert "--tracking-uri" in line and "bug" not in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("checkpoint.pt"))


def test_the_default_store_damaged_is_named_too(tmp_path):
    garbage(tmp_path / "mlflow.db")
    line = one_line_error(bench_cli("report", cwd=tmp_path))
    assert line.startswith("error: the MLflow store mlflow.db cannot be read (file is not a database)"), line


def report_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, folder)
    return folder


def test_reproduce_names_a_cut_table_and_a_broken_config_with_its_row(tmp_path):
    cut = report_copy(tmp_path)
    curves = cut / "tables" / "curves.csv"
    text = curves.read_text()
    # cut at a line's end, then an open quote: a field that starts quoted never ends ("EOF inside string")
    curves.write_text(text[: text.index("\n", len(text) // 2) + 1] + '"x')
    line = one_line_error(bench_cli("reproduce", str(cut), cwd=tmp_path))
    assert line.startswith(f"error: {curves}: not a readable report table (") and "EOF inside string" in line, line

    broken = report_copy(tmp_path / "b")
    trials = broken / "tables" / "trials.csv"
    text = trials.read_text()
    at = text.index('{""')
    trials.write_text(text[:at + 1] + "{{" + text[at + 1:])  # the first trial's config JSON
    for args in ([str(broken)], [str(broken), "--seeds"]):
        line = one_line_error(bench_cli("reproduce", *args, cwd=tmp_path))
        assert line.startswith(f"error: {trials}, row 1 (run ") and "its config is not valid JSON" in line, line


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_tolerance_that_is_not_a_finite_non_negative_number_is_refused(tmp_path, value):
    line = one_line_error(bench_cli("reproduce", str(QUICKSTART), "--tolerance", value, cwd=tmp_path))
    assert line.startswith(f"error: --tolerance {value}") and "finite number, 0 (bit-identical) or more" in line


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/b"])
def test_a_suite_name_is_one_safe_folder_name(tmp_path, name):
    work = tmp_path / "work"
    work.mkdir()
    tiny(work, name="s").write_text((work / "s.yaml").read_text().replace("name: s", f"name: '{name}'"))
    for args in (["run", "s.yaml", "--dry-run"], ["run", "s.yaml"], ["run", "s.yaml", "--set", "name=ok"]):
        if args[-1] == "name=ok":  # --set fixes it: the same check, passed
            args = ["run", "s.yaml", "--dry-run", "--set", "name=ok"]
            assert bench_cli(*args, cwd=work).returncode == 0
            continue
        line = one_line_error(bench_cli(*args, cwd=work))
        assert line.startswith("error: s.yaml: name: must be one folder name"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and sorted(p.name for p in work.iterdir()) == [
        "s.yaml"]


def test_a_report_of_a_stored_suite_whose_name_is_not_a_folder_name_is_refused(tmp_path):
    """A store written by another tool (or an older bench) with an experiment named `..`: reports/.. is the
    working folder, so its report needs --out."""
    from mlflow.tracking import MlflowClient

    uri = sqlite_store(tmp_path, "m.db")
    client = MlflowClient(uri)
    client.create_run(client.create_experiment(".."), tags={"bench.suite": "..", "bench.method": "dcgan"})
    line = one_line_error(bench_cli("report", "--tracking-uri", uri, cwd=tmp_path))
    assert line.startswith(f"error: suite '..' in {uri}: its name must be one folder name") and "--out DIR" in line


def test_a_grid_named_with_an_image_extension_is_that_file_in_that_format(tmp_path):
    from PIL import Image

    tiny(tmp_path, steps=2)
    store = sqlite_store(tmp_path, "m.db")
    ran = bench_cli("run", "tiny.yaml", "--only", "method=dcgan", "--tracking-uri", store, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    key = next(line.split()[1] for line in ran.stdout.splitlines() if "training on" in line)
    for name, kind in (("x.jpg", "JPEG"), ("x.JPEG", "JPEG"), ("x.webp", "WEBP"), ("x.png", "PNG")):
        drawn = bench_cli("sample", key, "--out", name, "--n", "4", "--tracking-uri", store, cwd=tmp_path)
        assert drawn.returncode == 0, drawn.stderr
        assert (tmp_path / name).is_file() and f"wrote {name}: a grid of 4 images" in drawn.stdout
        with Image.open(tmp_path / name) as image:
            assert image.format == kind and image.size == (2 + 4 * 18, 2 + 18)
    line = one_line_error(bench_cli("sample", key, "--out", "x.gif", "--n", "4", "--tracking-uri", store,
                                    cwd=tmp_path))
    assert line.startswith("error: --out x.gif: a grid is written as .png, .jpg"), line
    assert not (tmp_path / "x.gif").exists()
