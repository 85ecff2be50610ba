"""The one training loop. Every method goes through it; methods differ in their step, not in copies of the loop.

The method owns its networks, optimizers and step (bench.methods); the loop owns everything around them: the budget,
the batch order, checkpoints of every declared network, optimizer and scheduler and of the method's own state, NaN/inf
detection over every loss the step returns, logging of every loss name, evaluation and sample grids. One seeded
torch.Generator on the training device drives the batch order, the latents and any method randomness, so a trial is
reproducible and its state fits a checkpoint. Losses are accumulated on the device and read every `log.every` steps
(no host-device sync per step).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from bench import checkpoint as ckpt_io
from bench import numerics
from bench.batches import BatchSource, PairBatches, data_shape, fixed_latents, fixed_pairs
from bench.data import ImageSet, PairSet
from bench.errors import BenchError
from bench.methods import Method, StepContext, get_method, optim
from bench.streams import generator, seed_globals, training_seed
from bench.suite import Trial

log = logging.getLogger(__name__)


class Tracker(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_png(self, image: torch.Tensor, artifact_path: str) -> None: ...


class NullTracker:
    def log_metrics(self, metrics, step):
        pass

    def log_png(self, image, artifact_path):
        pass


# (method, step) -> metric values; the runner builds it from bench.metrics
Evaluator = Callable[[Method, int], dict[str, float]]
# (step, total steps, mean losses of the last window, images/s) -> None; called at every loss flush
Progress = Callable[[int, int, dict[str, float], float], None]


class TrialDiverged(Exception):
    def __init__(self, step: int, reason: str):
        super().__init__(f"step {step}: {reason}")
        self.step, self.reason = step, reason


class TrialPruned(Exception):  # noqa: N818 - a decision (a tuner's pruner), not an error
    """Raised by an evaluation hook: the trial is not worth finishing (bench tune's pruner said so at `step`)."""

    def __init__(self, step: int, reason: str = "pruned", values: dict[str, float] | None = None):
        super().__init__(f"pruned at step {step}")
        self.step, self.reason, self.values = step, reason, values or {}


class TrainingStopped(Exception):  # noqa: N818 - asked for (Ctrl-C), not an error
    """`should_stop` said so: the checkpoint of `step` has been written, the trial can resume from it."""

    def __init__(self, step: int):
        super().__init__(f"stopped at step {step}")
        self.step = step


@dataclass
class TrainResult:
    steps: int
    final_losses: dict[str, float]
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # {"step", metric: value, ...}
    seconds: float = 0.0


def total_steps(trial: Trial, n_images: int) -> int:
    """Generator steps of the budget; an epoch is one pass of the real data through the discriminator."""
    if trial.budget.steps is not None:
        return trial.budget.steps
    batches_per_epoch = max(1, n_images // trial.batch_size)
    per_step = get_method(trial.method).real_batches_per_step(trial.hyper())
    return max(1, math.ceil(trial.budget.epochs * batches_per_epoch / per_step))


# The loop's own state, declared once: each is an attribute of Trainer, saved under its name in every checkpoint and
# set back from it on resume (with the method's networks, optimizers, RNGs and batch order, which have their own
# state_dict). A new piece of loop state added here is checkpointed and resumed with no other edit.
LOOP_STATE = (
    "step",  # generator steps done
    "window", "counts", "window_steps",  # the logging window: loss sums, how many steps returned each, its length
    "first_bad_step",  # the first step with a non-finite loss, -1 if none (on the device, read at log time)
    "evaluations",  # every evaluation so far: {"step", metric: value, ...}
)


class Trainer:
    """Holds one trial's method (networks, optimizers) and RNG; `run()` trains it to its budget, resuming if it can."""

    def __init__(self, trial: Trial, data: ImageSet | PairSet, device: torch.device, run_dir: Path | None = None,
                 tracker: Tracker | None = None, evaluate: Evaluator | None = None,
                 grid_data: PairSet | None = None, held_out: ImageSet | None = None):
        self.trial, self.device, self.run_dir = trial, device, run_dir
        self.held_out = held_out
        self.tracker = tracker or NullTracker()
        self.evaluate = evaluate
        self.progress: Progress | None = None
        numerics.check(trial.numerics.portable, device)
        with self._numerics():
            self._build(trial, data, device, grid_data)

    def _numerics(self):
        return numerics.trial_numerics(self.trial.numerics, self.device)

    def _build(self, trial: Trial, data: ImageSet | PairSet, device: torch.device, grid_data: PairSet | None) -> None:
        seed_globals(trial.seed)
        self.data = data.to(device)
        self.grid_data = grid_data.to(device) if grid_data is not None else self.data  # translation grids' inputs
        if trial.numerics.channels_last and isinstance(self.data, ImageSet):
            self.data.images = self.data.images.contiguous(memory_format=torch.channels_last)
        self.shape = data_shape(data, trial.resolution)
        self.total = total_steps(trial, len(data))
        self.method = get_method(trial.method)(trial.hyper(), self.shape)
        self.method.setup(device, trial.numerics.channels_last, trial.numerics.compile, self.total)
        self.rng = generator(training_seed(trial.seed), device)
        source = PairBatches if isinstance(self.data, PairSet) else BatchSource
        self.batches = source(self.data, trial.batch_size, self.rng)
        self.step = 0
        # loss name -> sum over the logging window (float64, on device), and how many steps returned it (a lazy
        # regulariser is returned only on the steps that compute it)
        self.window: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.window_steps = 0
        self.first_bad_step = torch.full((), -1, device=device, dtype=torch.long)
        self.evaluations: list[dict[str, Any]] = []

    # checkpoints ---------------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / ckpt_io.CHECKPOINT_NAME

    def state_dict(self) -> dict[str, Any]:
        m = self.method
        return {
            "format": ckpt_io.FORMAT, "key": self.trial.key, "trial": self.trial.model_dump(mode="json"),
            "data_shape": {"channels": self.shape.channels, "resolution": self.shape.resolution,
                           "n_classes": self.shape.n_classes, "classes": list(self.shape.classes),
                           "pairs": self.shape.pairs},
            "device_type": self.device.type, "total_steps": self.total,
            "networks": {k: v.state_dict() for k, v in m.nets.items()},
            "optimizers": {k: v.state_dict() for k, v in m.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in m.schedulers.items()},
            "method_state": m.extra_state(),
            "rng": self.rng.get_state(), "global_rng": ckpt_io.global_rng_state(), "order": self.batches.state_dict(),
            **{name: getattr(self, name) for name in LOOP_STATE}, "class_weights": self.shape.class_weights,
        }

    def save(self) -> None:
        if self.checkpoint_path is not None:
            ckpt_io.save_atomic(self.state_dict(), self.checkpoint_path)

    def resume(self) -> bool:
        """Load the latest checkpoint when there is one; refuse one made for another config or device type."""
        path = self.checkpoint_path
        if path is None or not path.exists():
            return False
        state = ckpt_io.upgrade(ckpt_io.load(path, self.device))
        saved = Trial.model_validate(state["trial"])
        if state["key"] != self.trial.key or saved.identity() != self.trial.identity():
            changed = sorted(k for k, v in self.trial.identity().items() if saved.identity().get(k) != v)
            raise BenchError(f"{path}: checkpoint was made with a different config (changed: {', '.join(changed)}); "
                             "delete the folder to retrain, or restore the suite")
        if state["device_type"] != self.device.type:
            made_on = state["device_type"]
            raise BenchError(f"{path}: checkpoint was made on {made_on}, this run is on {self.device.type}; "
                             f"resuming would not reproduce it: pass --device {made_on}")
        m = self.method
        for group, parts in (("networks", m.nets), ("optimizers", m.optimizers), ("schedulers", m.schedulers)):
            for name, part in parts.items():
                if group == "optimizers":
                    optim.load_state(part, state[group][name])  # with bench's kernel, whatever the file says
                else:
                    part.load_state_dict(state[group][name])
        m.load_extra_state(state["method_state"])
        self.rng.set_state(state["rng"].cpu() if hasattr(state["rng"], "cpu") else state["rng"])
        ckpt_io.restore_global_rng(state["global_rng"])
        self.batches.load_state_dict(state["order"])
        for name in LOOP_STATE:
            setattr(self, name, state[name])
        return True

    # the loop ------------------------------------------------------------------------------------------------
    def train_step(self) -> None:
        ctx = StepContext(self.batches, self.rng, self.step, self._autocast)
        losses = self.method.step(ctx)
        self.step += 1
        values = torch.stack(list(losses.values())).double()
        for i, name in enumerate(losses):
            if name not in self.window:
                self.window[name] = torch.zeros((), device=self.device, dtype=torch.float64)
                self.counts[name] = 0
            self.window[name] += values[i]
            self.counts[name] += 1
        self.window_steps += 1
        bad = (~torch.isfinite(values).all()) & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(bad, self.step, self.first_bad_step)

    def _autocast(self):
        if not self.trial.numerics.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def flush_losses(self, seconds: float) -> dict[str, float]:
        """Read the loss window (one sync), fail on non-finite losses, log means and throughput."""
        bad_step = int(self.first_bad_step)
        sums = {name: float(v) for name, v in self.window.items()}
        if bad_step >= 0:
            name, value = next((k, v) for k, v in sums.items() if not math.isfinite(v))
            raise TrialDiverged(bad_step, f"{name} became {value}")
        means = {name: total / self.counts[name] for name, total in sums.items() if self.counts[name]}
        per_step = self.method.real_batches_per_step(self.method.hp) * self.trial.batch_size
        metrics = dict(means, images_per_s=self.window_steps * per_step / seconds if seconds > 0 else 0.0)
        metrics.update(self.heldout_scores())
        self.tracker.log_metrics(metrics, step=self.step)
        for name, total in self.window.items():
            total.zero_()
            self.counts[name] = 0
        self.window_steps = 0
        if self.progress is not None:
            self.progress(self.step, self.total, means, metrics["images_per_s"])
        return means

    PROBE = 256  # real images per side of log.heldout_scores: the first of the training and of the held-out split

    def heldout_scores(self) -> dict[str, float]:
        """D's mean output on fixed training and held-out real images (eval mode, no gradient, no randomness: the
        training's numbers do not move); their gap is the overfitting ADA acts on (Karras et al. 2020, Fig. 1)."""
        if not self.trial.log.heldout_scores or self.held_out is None:
            return {}
        out = {}
        for name, images in (("d_real_train", self.data), ("d_real_heldout", self.held_out)):
            labels = None if images.labels is None else images.labels[:self.PROBE].to(self.device)
            out[name] = self.method.real_scores(images.images[:self.PROBE].to(self.device), labels)
        return out

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        with self._own_randomness():
            if self.method.task == "translation":
                inputs = fixed_pairs(self.grid_data, self.trial.suite, self.trial.dataset.name)
                return self.method.translation_grid(inputs["a"], inputs["b"])
            z = fixed_latents(self.trial.suite, self.trial.dataset.name, self.method.hp.latent_dim)
            latents = {k: v.to(self.device) for k, v in self.method.grid_latents(z).items()}
            with self.method.eval_mode():
                return self.method.generate(latents).float()

    def run_evaluation(self) -> None:
        if self.evaluate is None:
            return
        with self._own_randomness():
            values = self.evaluate(self.method, self.step)
        if values:
            self.evaluations.append({"step": self.step, **values})

    def _own_randomness(self):
        """Grids and evaluations leave the global RNGs as they found them (Pix2Pix's test-time dropout draws from
        them), so how often a trial is looked at never changes how it trains."""
        devices = [self.device] if self.device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    def run(self, stop_after: int | None = None, progress: Progress | None = None,
            should_stop: Callable[[], bool] | None = None) -> TrainResult:
        """Train to the budget (or `stop_after` steps, for tests and perf). Resumes from the checkpoint if any.

        `should_stop` is asked after every step; when it says yes the state is checkpointed at that step and
        TrainingStopped is raised (the runner's Ctrl-C), so a resume loses nothing.
        """
        with self._numerics():
            return self._run(stop_after, progress, should_stop)

    def _run(self, stop_after: int | None, progress: Progress | None, should_stop: Callable[[], bool] | None
             ) -> TrainResult:
        self.progress = progress
        self.resume()
        log_cfg, eval_every = self.trial.log, self.trial.eval.every
        end = self.total if stop_after is None else min(self.total, stop_after)
        start_time = window_start = time.perf_counter()
        means: dict[str, float] = {}
        for net in self.method.nets.values():
            net.train()
        while self.step < end:
            self.train_step()
            step = self.step
            if step % log_cfg.every == 0 or step == self.total:
                now = time.perf_counter()
                means = self.flush_losses(now - window_start)
                window_start = now
            if step % log_cfg.samples_every == 0 and step != self.total:
                self.tracker.log_png(self.sample_grid(), f"samples/step_{step:06d}.png")
            if eval_every and step % eval_every == 0 and step != self.total:
                self.run_evaluation()
            stop = should_stop is not None and step < self.total and should_stop()
            if step % log_cfg.checkpoint_every == 0 or step == self.total or stop:
                self.save()
            if stop:
                raise TrainingStopped(step)
        if self.step == self.total:
            if not means and self.window_steps:
                means = self.flush_losses(time.perf_counter() - window_start)
            self.tracker.log_png(self.sample_grid(), "samples/final.png")
            if not self.evaluations or self.evaluations[-1]["step"] != self.step:
                self.run_evaluation()
                self.save()
        return TrainResult(self.step, means, self.evaluations, time.perf_counter() - start_time)
