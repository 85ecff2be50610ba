"""One rule each: device names, slots for parallel trials, and the random streams a trial derives from its seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import devices, streams
from bench.cli_options import placement
from bench.errors import BenchError
from bench.executors import Placement, Slot, plan_slots, slot_device


@pytest.fixture
def four_gpus(monkeypatch):
    """A machine that shows 4 CUDA GPUs (the slot rules only count them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)


def test_a_named_gpu_is_cuda_for_every_rule():
    for name in ("cuda", "cuda:0", "cuda:1", "cuda:12"):
        assert devices.is_cuda(name) and devices.trains_on_cuda(name)
    for name in ("cpu", "mps"):
        assert not devices.trains_on_cuda(name)
    assert devices.trains_on_cuda("auto") == torch.cuda.is_available()


def test_cuda_n_with_parallel_plans_gpu_slots_on_that_gpu(four_gpus):
    slots = plan_slots(2, 2, "cuda:1", set())
    assert slots == [Slot("cuda:1"), Slot("cuda:1")]
    slots = plan_slots(2, 2, None, {"cuda:3"})  # the trials' own device
    assert [s.device for s in slots] == ["cuda:3", "cuda:3"]
    with pytest.raises(BenchError, match="--parallel 2 with --per-gpu 1 needs 2 GPUs; the trials have GPU 1 alone"):
        plan_slots(2, 1, "cuda:1", set())


def test_cuda_spreads_slots_k_per_gpu(four_gpus):
    assert [s.device for s in plan_slots(8, 2, "cuda", set())] == [f"cuda:{i // 2}" for i in range(8)]
    assert [s.device for s in plan_slots(3, 1, None, {"auto"})] == ["cuda:0", "cuda:1", "cuda:2"]
    with pytest.raises(BenchError, match="needs 5 GPUs; the trials have 4 GPUs: use --per-gpu 3"):
        plan_slots(9, 2, "cuda", set())


def test_cpu_slots_leave_the_thread_count_to_the_trials_numerics():
    assert plan_slots(4, 1, "cpu", {"cuda"}) == [Slot(None)] * 4  # --device cpu overrides the trials'
    assert plan_slots(32, 1, None, {"cpu"}) == [Slot(None)] * 32  # each trial computes with numerics.threads


def test_a_gpu_slot_places_only_trials_without_a_gpu_of_their_own():
    gpu = Slot("cuda:2")
    assert slot_device(gpu, "cuda", None) == "cuda:2" and slot_device(gpu, "auto", None) == "cuda:2"
    assert slot_device(gpu, "cpu", "cuda") == "cuda:2"  # --device cuda overrides the trial, the slot picks the GPU
    assert slot_device(gpu, "cuda:1", None) is None  # the trial keeps its own cuda:1
    assert slot_device(Slot(None), "cuda", None) is None and slot_device(Slot(None), "cpu", "cpu") == "cpu"


def test_one_placement_rule_for_run_and_tune():
    assert placement(None, None, 1, None) == Placement("local", None, 1, None)
    assert placement(None, 4, 1, None).executor == "parallel"
    assert placement(None, None, 2, None).executor == "parallel"
    assert placement(None, None, 1, "auto").executor == "ray"
    assert placement("ray", 3, 1, None) == Placement("ray", 3, 1, None)
    for bad, message in (((None, 0, 1, None), "--parallel 0 --per-gpu 1"), (("spark", None, 1, None), "spark")):
        with pytest.raises(BenchError, match=message):
            placement(*bad)


def test_unknown_or_absent_devices_are_one_line(monkeypatch):
    with pytest.raises(BenchError, match="--device tpu: unknown device; allowed: auto, cpu, cuda, cuda:N, mps"):
        devices.resolve("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BenchError, match="no CUDA GPU is visible"):
        devices.resolve("cuda:0")
    assert devices.resolve("auto") == torch.device("cpu")


def test_the_random_streams_keep_their_values():
    """The table in bench/streams.py is what every recorded number was drawn with: these values must not move."""
    assert streams.training_seed(7) == 7 and streams.globals_seed(7) == 7
    assert streams.evaluation_seed(7) == 1_000_010 and streams.intra_fid_seed(7) == 2_000_010
    assert streams.tpe_seed(3, 5) == 3_000_014 and streams.tpe_seed(5000, 0) == (5000 * 1_000_003) % 2**32
    assert streams.grid_seed("quickstart", "digits") == 0x52E7121C  # sha256("quickstart/digits")[:8]
    first = torch.randn(3, generator=streams.generator(streams.evaluation_seed(0)))
    assert torch.equal(first, torch.randn(3, generator=torch.Generator().manual_seed(1_000_003)))
    assert streams.grid_noise_seed() == 0
    assert set(streams.STREAMS) == {"globals", "training", "evaluation", "intra_fid", "leak", "leak_check", "grid",
                                    "grid_noise", "tpe"}
    # the methods and networks draw from the streams they are given (or the table's), never from a seed of their own
    root = Path(streams.__file__).parent
    own = [f"{p.relative_to(root)}:{n}" for folder in ("methods", "nets") for p in sorted((root / folder).glob("*.py"))
           for n, line in enumerate(p.read_text().splitlines(), 1) if "manual_seed(" in line]
    assert not own, f"seeded outside bench/streams.py: {own}"
