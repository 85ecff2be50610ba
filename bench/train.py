"""The one training loop. Every method goes through it; methods differ in their step, not in copies of the loop.

Per generator step: `critic_steps` discriminator steps on fresh real batches and latents, then one generator step
on the fake batch of the last discriminator step. One seeded torch.Generator on the training device drives the
batch order, the latents and any method randomness, so a trial is reproducible and its state fits a checkpoint.
Losses are accumulated on the device and read every `log.every` steps (no host-device sync per step).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from bench import checkpoint as ckpt_io
from bench.data import ImageSet
from bench.errors import BenchError
from bench.methods import Method, get_method
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


# (method, generator, step, class weights or None) -> metric values; the runner builds it from bench.metrics
Evaluator = Callable[[Method, torch.nn.Module, int, torch.Tensor | None], dict[str, float]]


# (step, total steps, mean losses of the last window, images/s) -> None; called at every loss flush
Progress = Callable[[int, int, dict[str, float], float], None]


class TrialDiverged(Exception):
    def __init__(self, step: int, reason: str):
        super().__init__(f"step {step}: {reason}")
        self.step, self.reason = step, reason


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
    critic_steps = trial.hyper().critic_steps
    return max(1, math.ceil(trial.budget.epochs * batches_per_epoch / critic_steps))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"device '{name}' asked for, but no CUDA GPU is visible; use --device cpu or auto")
    return device


def fixed_latents(suite: str, dataset: str, latent_dim: int, n: int = 64) -> torch.Tensor:
    """The same latent batch for every trial of a (suite, dataset), so sample grids compare by eye."""
    seed = int(hashlib.sha256(f"{suite}/{dataset}".encode()).hexdigest()[:8], 16)
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


class BatchOrder:
    """Epoch-wise random permutations of the dataset indices, drawn from the trial's generator."""

    def __init__(self, n: int, batch_size: int, rng: torch.Generator):
        if n < batch_size:
            raise BenchError(f"the dataset has {n} images, fewer than batch_size {batch_size}; lower batch_size")
        self.n, self.batch_size, self.rng = n, batch_size, rng
        self.perm: torch.Tensor | None = None
        self.pos = n  # forces a new permutation on first use

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n:  # drop the incomplete last batch, as DataLoader(drop_last=True)
            self.perm = torch.randperm(self.n, generator=self.rng, device=self.rng.device)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self):
        return {"perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state):
        self.perm, self.pos = state["perm"], state["pos"]


class Trainer:
    """Holds one trial's networks, optimizers and RNG; `run()` trains it to its budget, resuming if it can."""

    def __init__(self, trial: Trial, data: ImageSet, device: torch.device, run_dir: Path | None = None,
                 tracker: Tracker | None = None, evaluate: Evaluator | None = None):
        self.trial, self.device, self.run_dir = trial, device, run_dir
        self.tracker = tracker or NullTracker()
        self.evaluate = evaluate
        self.progress: Progress | None = None
        seed_everything(trial.seed)
        self.data = data.to(device)
        if trial.numerics.channels_last:
            self.data.images = self.data.images.contiguous(memory_format=torch.channels_last)
        method_cls = get_method(trial.method)
        self.data_shape = {"channels": data.channels, "resolution": trial.resolution, "n_classes": data.n_classes}
        self.method = method_cls(trial.hyper(), **self.data_shape)
        self.generator = self.method.build_generator().to(device)
        self.discriminator = self.method.build_discriminator().to(device)
        if trial.numerics.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        self.opt_g, self.opt_d = self.method.optimizers(self.generator, self.discriminator)
        self.rng = torch.Generator(device).manual_seed(trial.seed)
        self.order = BatchOrder(len(data), trial.batch_size, self.rng)
        self.total = total_steps(trial, len(data))
        self.step = 0
        self.window = torch.zeros(2, device=device, dtype=torch.float64)  # sums of loss_d, loss_g
        self.window_steps = 0
        self.first_bad_step = torch.full((), -1, device=device, dtype=torch.long)
        self.evaluations: list[dict[str, Any]] = []
        self.class_weights = None
        if data.labels is not None and data.n_classes:
            self.class_weights = torch.bincount(data.labels, minlength=data.n_classes).double().cpu()
        self._g_step = self.generator
        self._d_step = self.discriminator
        if trial.numerics.compile:
            self._g_step = torch.compile(self.generator)
            self._d_step = torch.compile(self.discriminator)

    # checkpoints ---------------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / ckpt_io.CHECKPOINT_NAME

    def state_dict(self) -> dict[str, Any]:
        return {
            "key": self.trial.key, "trial": self.trial.model_dump(mode="json"), "data_shape": self.data_shape,
            "device_type": self.device.type, "step": self.step, "total_steps": self.total,
            "generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": self.rng.get_state(), "global_rng": ckpt_io.global_rng_state(), "order": self.order.state_dict(),
            "window": self.window, "window_steps": self.window_steps, "first_bad_step": self.first_bad_step,
            "evaluations": self.evaluations, "class_weights": self.class_weights,
        }

    def save(self) -> None:
        if self.checkpoint_path is not None:
            ckpt_io.save_atomic(self.state_dict(), self.checkpoint_path)

    def resume(self) -> bool:
        """Load the latest checkpoint when there is one; refuse one made for another config or device type."""
        path = self.checkpoint_path
        if path is None or not path.exists():
            return False
        state = ckpt_io.load(path, self.device)
        saved = Trial.model_validate(state["trial"])
        if state["key"] != self.trial.key or saved.identity() != self.trial.identity():
            changed = sorted(k for k, v in self.trial.identity().items() if saved.identity().get(k) != v)
            raise BenchError(f"{path}: checkpoint was made with a different config (changed: {', '.join(changed)}); "
                             "delete the folder to retrain, or restore the suite")
        if state["device_type"] != self.device.type:
            made_on = state["device_type"]
            raise BenchError(f"{path}: checkpoint was made on {made_on}, this run is on {self.device.type}; "
                             f"resuming would not reproduce it: pass --device {made_on}")
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.set_state(state["rng"].cpu() if hasattr(state["rng"], "cpu") else state["rng"])
        ckpt_io.restore_global_rng(state["global_rng"])
        self.order.load_state_dict(state["order"])
        self.step, self.window_steps = state["step"], state["window_steps"]
        self.window, self.first_bad_step = state["window"], state["first_bad_step"]
        self.evaluations = state["evaluations"]
        return True

    # the loop ------------------------------------------------------------------------------------------------
    def train_step(self) -> None:
        method, G, D, rng = self.method, self._g_step, self._d_step, self.rng
        images, labels = self.data.images, self.data.labels
        batch, latent_dim = self.trial.batch_size, self.method.hp.latent_dim
        critic_steps = method.hp.critic_steps
        for i in range(critic_steps):
            idx = self.order.next()
            real = images[idx]
            y = None if labels is None else labels[idx]
            z = torch.randn(batch, latent_dim, device=self.device, generator=rng)
            with torch.set_grad_enabled(i == critic_steps - 1), self._autocast():
                fake = method.generate(G, z, y)
            self.opt_d.zero_grad(set_to_none=True)
            with self._autocast():
                loss_d = method.d_loss(D, real, fake.detach(), y, rng)
            loss_d.backward()
            self.opt_d.step()
            method.after_d_step(self.discriminator)
        self.opt_g.zero_grad(set_to_none=True)
        with self._autocast():
            loss_g = method.g_loss(D, fake, y)
        loss_g.backward()
        self.opt_g.step()
        self.step += 1
        losses = torch.stack([loss_d.detach(), loss_g.detach()]).double()
        self.window += losses
        self.window_steps += 1
        bad = (~torch.isfinite(losses).all()) & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(bad, self.step, self.first_bad_step)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.trial.numerics.bf16)

    def flush_losses(self, seconds: float) -> dict[str, float]:
        """Read the loss window (one sync), fail on non-finite losses, log means and throughput."""
        bad_step = int(self.first_bad_step)
        sums = self.window.tolist()
        if bad_step >= 0:
            which = "loss_d" if not math.isfinite(sums[0]) else "loss_g"
            raise TrialDiverged(bad_step, f"{which} became {sums[0] if which == 'loss_d' else sums[1]}")
        n = max(self.window_steps, 1)
        means = {"loss_d": sums[0] / n, "loss_g": sums[1] / n}
        images = self.window_steps * self.trial.batch_size * self.method.hp.critic_steps
        metrics = dict(means, images_per_s=images / seconds if seconds > 0 else 0.0)
        self.tracker.log_metrics(metrics, step=self.step)
        self.window.zero_()
        self.window_steps = 0
        if self.progress is not None:
            self.progress(self.step, self.total, means, metrics["images_per_s"])
        return means

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        z = fixed_latents(self.trial.suite, self.trial.dataset.name, self.method.hp.latent_dim).to(self.device)
        labels = None
        if self.class_weights is not None:
            labels = torch.arange(z.shape[0], device=self.device) % self.data.n_classes
        self.generator.eval()
        images = self.method.generate(self.generator, z, labels).float()
        self.generator.train()
        return images

    def run_evaluation(self) -> None:
        if self.evaluate is None:
            return
        self.generator.eval()
        values = self.evaluate(self.method, self.generator, self.step, self.class_weights)
        self.generator.train()
        if values:
            self.evaluations.append({"step": self.step, **values})

    def run(self, stop_after: int | None = None, progress: Progress | None = None,
            should_stop: Callable[[], bool] | None = None) -> TrainResult:
        """Train to the budget (or `stop_after` steps, for tests and perf). Resumes from the checkpoint if any.

        `should_stop` is asked after every step; when it says yes the state is checkpointed at that step and
        TrainingStopped is raised (the runner's Ctrl-C), so a resume loses nothing.
        """
        self.progress = progress
        self.resume()
        log_cfg, eval_every = self.trial.log, self.trial.eval.every
        end = self.total if stop_after is None else min(self.total, stop_after)
        start_time = window_start = time.perf_counter()
        means: dict[str, float] = {}
        self.generator.train()
        self.discriminator.train()
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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
