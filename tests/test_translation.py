"""Image-to-image translation: the datasets, CycleGAN and Pix2Pix, their protocol (FID per direction between the
baselines of the data alone) and the report's translation section."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bench.data import PairSet, load_dataset
from bench.errors import BenchError
from bench.methods import DataShape, get_method
from bench.suite import Budget, DatasetSpec, EvalSpec, LogSpec, Numerics, Trial
from bench.train import Trainer
from tests.conftest import bench_cli, sqlite_store

CPU = torch.device("cpu")


def trial(method: str, dataset: str, steps: int, batch_size: int = 4, **params) -> Trial:
    hp = get_method(method).Hyper(width=8, **params).as_params()
    return Trial(suite="t", method=method, label=method, params=hp, dataset=DatasetSpec(name=dataset), seed=0,
                 budget=Budget(steps=steps), resolution=16, batch_size=batch_size, eval=EvalSpec(metrics=[]),
                 numerics=Numerics(), log=LogSpec(every=10, samples_every=10**6, checkpoint_every=10**6),
                 device="cpu")


class Recorder:
    def __init__(self):
        self.metrics, self.images = [], {}

    def log_metrics(self, metrics, step):
        self.metrics.append((step, dict(metrics)))

    def log_png(self, image, path):
        self.images[path] = image


@pytest.mark.parametrize("method, dataset, rows", [("cyclegan", "digits-thick", 6), ("pix2pix", "digits-edges", 3)])
def test_both_methods_train_with_finite_losses_and_draw_their_grids(method, dataset, rows):
    recorder = Recorder()
    trainer = Trainer(trial(method, dataset, 10), load_dataset(dataset, 16), CPU, tracker=recorder)
    trainer.run()
    for _, metrics in recorder.metrics:
        assert all(np.isfinite(v) for k, v in metrics.items() if k.startswith("loss_"))
    assert recorder.images["samples/final.png"].shape == (rows * 8, 1, 16, 16)  # input | translation | ...
    assert trainer.method.translate(torch.zeros(3, 1, 16, 16)).shape == (3, 1, 16, 16)


@pytest.mark.slow
def test_the_cycle_loss_falls_on_the_toy_pair():
    recorder = Recorder()
    Trainer(trial("cyclegan", "digits-thick", 150), load_dataset("digits-thick", 16), CPU, tracker=recorder).run()
    cycle = [m["loss_cycle"] for _, m in recorder.metrics]
    assert cycle[-1] < 0.6 * cycle[0], cycle


def test_the_image_pool_returns_a_stored_image_half_the_time_once_full():
    from bench.methods.cyclegan import ImagePool

    pool, rng = ImagePool(50), torch.Generator().manual_seed(0)
    for i in range(50):  # filling: every image comes straight back
        image = torch.full((1, 1, 2, 2), float(i))
        assert torch.equal(pool.query(image, rng), image)
    old = 0
    for i in range(50, 2050):
        image = torch.full((1, 1, 2, 2), float(i))
        old += not torch.equal(pool.query(image, rng), image)
    assert 0.46 < old / 2000 < 0.54  # a binomial(2000, 0.5) lands here with probability > 99.99%
    assert len(pool.images) == 50


def test_the_learning_rate_is_constant_then_falls_linearly_to_zero_and_resumes_bit_identically(tmp_path):
    data = load_dataset("digits-edges", 16)
    base = trial("pix2pix", "digits-edges", 20)
    full = Trainer(base, data, CPU)
    rates = []
    for _ in range(20):
        rates.append(full.method.optimizers["generator"].param_groups[0]["lr"])
        full.train_step()
    assert rates[:10] == [2e-4] * 10  # the first half at the paper's rate
    assert rates[10:] == pytest.approx([2e-4 * (20 - s) / 10 for s in range(10, 20)])  # then linearly to 0
    assert full.method.optimizers["generator"].param_groups[0]["lr"] == 0.0

    cut = base.model_copy(update={"log": base.log.model_copy(update={"checkpoint_every": 12})})
    Trainer(cut, data, CPU, run_dir=tmp_path).run(stop_after=15)  # resumed from step 12, in the falling half
    resumed = Trainer(cut, data, CPU, run_dir=tmp_path)
    resumed.run()
    uninterrupted = Trainer(cut, data, CPU)
    uninterrupted.run()
    for name in ("generator", "discriminator"):
        for a, b in zip(uninterrupted.method.nets[name].state_dict().values(),
                        resumed.method.nets[name].state_dict().values(), strict=True):
            assert torch.equal(a, b)


def test_methods_refuse_the_wrong_kind_of_data():
    with pytest.raises(BenchError, match="translates images between two domains"):
        get_method("cyclegan")(get_method("cyclegan").Hyper(), DataShape(1, 16))
    with pytest.raises(BenchError, match="learns from aligned pairs"):
        get_method("pix2pix")(get_method("pix2pix").Hyper(), DataShape(1, 16, pairs="unpaired"))
    with pytest.raises(BenchError, match="generates images from noise"):
        get_method("dcgan")(get_method("dcgan").Hyper(), DataShape(1, 16, pairs="paired"))


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def test_folder_layouts_of_both_kinds_load(tmp_path):
    rng = np.random.default_rng(0)
    for side in ("trainA", "trainB", "testA", "testB"):
        for i in range(3 + (side == "trainB")):
            write_png(tmp_path / "u" / side / f"{i}.png", rng.integers(0, 255, (20, 20)))
    unpaired = load_dataset("unpaired", 16, "train", path=str(tmp_path / "u"))
    assert isinstance(unpaired, PairSet) and not unpaired.paired
    assert (unpaired.a.shape, unpaired.b.shape) == ((3, 1, 16, 16), (4, 1, 16, 16))
    for i in range(2):  # Pix2Pix's archives: A|B side by side
        write_png(tmp_path / "p" / "train" / f"{i}.png", np.concatenate([np.zeros((20, 20)), np.full((20, 20), 255)],
                                                                          axis=1))
    paired = load_dataset("paired", 16, "train", path=str(tmp_path / "p"))
    assert paired.paired and paired.a.max() == pytest.approx(-1) and paired.b.min() == pytest.approx(1)  # A | B
    swapped = load_dataset("paired", 16, "train", path=str(tmp_path / "p"), swap=True)
    assert swapped.a.min() == pytest.approx(1)


def test_paired_folders_with_mismatched_names_are_one_line_exit_2(tmp_path):
    for side, names in (("A", ["1.png", "2.png"]), ("B", ["1.png", "3.png"])):
        for name in names:
            write_png(tmp_path / "pairs" / "train" / side / name, np.zeros((16, 16)))
    (tmp_path / "s.yaml").write_text(f"""
name: mismatch
methods: [{{pix2pix: {{width: 8}}}}]
datasets: [{{name: paired, path: {tmp_path / 'pairs'}}}]
seeds: 1
resolution: 16
batch_size: 1
budget: {{steps: 2}}
eval: {{metrics: []}}
""")
    result = bench_cli("run", "s.yaml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "1 files in" in result.stderr and "have no partner of the same name (e.g. 2.png)" in result.stderr


I2I = """
name: i2i
methods:
  - name: cyclegan
    params: {width: 8}
    datasets: [digits-thick]
  - name: pix2pix
    params: {width: 8}
    datasets: [digits-edges]
datasets: [digits-thick, digits-edges]
seeds: [0]
resolution: 16
batch_size: 4
budget: {steps: 30}
eval: {n_fake: 32, n_real: 48, reference_split: test, metrics: [fid, kid]}
log: {every: 10, samples_every: 1000, checkpoint_every: 10}
"""


@pytest.mark.slow
def test_a_translation_suite_runs_reports_between_its_baselines_and_translates_a_folder(tmp_path, tiny_inception):
    """The suite, its report and `bench sample --input` through the CLI; FID's features from conftest's small
    stand-in for Inception (the baselines' order is a property of the data, not of the network)."""
    (tmp_path / "i2i.yaml").write_text(I2I)
    sqlite_store(tmp_path)  # the default store, ./mlflow.db
    ran = bench_cli("run", "i2i.yaml", cwd=tmp_path, env={"BENCH_CACHE": str(tmp_path / "cache")})
    assert ran.returncode == 0, ran.stdout + ran.stderr
    statuses = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "i2i").glob("*/status.json")]
    final = {len(s["evaluations"][-1]): s["evaluations"][-1] for s in statuses}
    cycle = next(v for v in final.values() if "fid_b2a" in v)
    pix = next(v for v in final.values() if "ssim_a2b" in v)
    for values in (cycle, pix):  # doing nothing is farther from the target than real from real
        assert values["baseline_fid_a_vs_b"] > values["baseline_fid_a_vs_a"]
        assert values["baseline_fid_a_vs_b"] > values["baseline_fid_b_vs_b"]
    assert 0 < pix["ssim_a2b"] < 1 and pix["psnr_a2b"] > 0 and 0 < pix["l1_a2b"] < 1

    report = bench_cli("report", "--suite", "i2i", "--out", "report", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report" / "README.md").read_text()
    assert "Translation: between doing nothing and real against real" in page
    assert "digits-thick A→B" in page and "digits-thick B→A" in page and "digits-edges A→B" in page
    assert "untranslated source vs target" in page and "| pix2pix | digits-edges A→B |" in page
    assert (tmp_path / "report" / "figures" / "translation_fid.png").exists()
    assert "Final FID" not in page  # no noise-to-image trial: no headline table of them
    # a cell no better than doing nothing says so and is never the column's best
    cells = pd.read_csv(tmp_path / "report" / "tables" / "translation_fid.csv")
    trials = pd.read_csv(tmp_path / "report" / "tables" / "translation_trials.csv")
    nothing = trials.groupby("dataset")["nothing"].mean()
    assert list(cells["above_untranslated"]) == [m >= nothing[d] for m, d in zip(cells["mean"], cells["dataset"],
                                                                               strict=True)]
    assert not (cells["above_untranslated"] & cells["best"]).any()
    assert page.count("above untranslated: worse than doing nothing") == cells["above_untranslated"].sum()

    key = next(p.parent.name for p in (tmp_path / "runs" / "i2i").glob("*/status.json")
               if "ssim_a2b" in json.loads(p.read_text())["evaluations"][-1])
    inputs = tmp_path / "edges"
    for i in range(3):
        write_png(inputs / f"e{i}.png", np.zeros((16, 16)))
    translated = bench_cli("sample", key, "--input", "edges", "--out", "out", cwd=tmp_path)
    assert translated.returncode == 0, translated.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["e0.png", "e1.png", "e2.png"]
    bad = bench_cli("sample", key, "--out", "x.png", cwd=tmp_path)
    assert bad.returncode == 2 and "give --input DIR" in bad.stderr and bad.stderr.count("\n") == 1
    a_file = bench_cli("sample", key, "--input", "i2i.yaml", "--out", "x.png", cwd=tmp_path)
    assert a_file.returncode == 2 and a_file.stderr.count("\n") == 1, a_file.stderr
    assert "--input i2i.yaml: is a file; give the folder that holds the images" in a_file.stderr
