"""A small encoder bench trains on a dataset itself, whose penultimate features are a feature space for every metric
(`eval.features: encoder:PATH`, `--features encoder:PATH`): Inception was trained on ImageNet photographs, and on 8x8
digits or LEGO figures its 2048 features say more about resizing than about the images.

`bench encoder train DATASET` trains it on the dataset's train split, on the CPU, seeded, with bench's trial numerics:
- with labels (digits, mnist, a folder of class subfolders): a classifier (cross-entropy), and its accuracy on the
  test split is printed and saved in the file;
- without: self-supervised, SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
  Representations"): two augmented views of each image (random crop and shift, flip, brightness and contrast), the
  NT-Xent loss at temperature 0.5 through a projection head that the features leave out.
The file (torch.save of plain types, read back with weights_only) holds the format tag, the architecture's config,
the preprocessing (input resolution, channels, normalisation), the state dict and how it was trained; its sha256 is
what records name. Images reach it as a metric sees them: uint8 (as saved to a PNG), channels matched (RGB averaged to
grey, grey repeated to RGB), resized bilinearly with antialiasing to its resolution, scaled by its mean and std.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError

FORMAT = "bench-encoder"
VERSION = 1
TEMPERATURE = 0.5  # NT-Xent's, SimCLR's CIFAR-10 setting
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4


@dataclass(frozen=True)
class EncoderConfig:
    channels: int  # input channels: 1 grey, 3 RGB
    resolution: int  # input side, pixels
    width: int = 32  # channels of the first convolutions (doubled after the first downsampling)
    feature_dim: int = 64  # the penultimate features: the feature space
    classes: int = 0  # a classifier's head over the features; 0: a SimCLR projection head instead


class Encoder(nn.Module):
    """Four 3x3 convolutions (two of stride 2), global average pooling, a linear layer to `feature_dim` features;
    then the head (classes, or SimCLR's projection), which the features do not pass through."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        w = config.width
        self.config = config
        self.body = nn.Sequential(
            nn.Conv2d(config.channels, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, w, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, config.feature_dim))
        out = config.classes or config.feature_dim // 2
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(config.feature_dim, out)) if config.classes else \
            nn.Sequential(nn.ReLU(), nn.Linear(config.feature_dim, config.feature_dim), nn.ReLU(),
                          nn.Linear(config.feature_dim, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The features (the space), not the head's output."""
        return self.body(x)


@dataclass(frozen=True)
class Preprocessing:
    resolution: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 1 or 3, H, W) -> float (B, channels, resolution, resolution), normalised."""
        x = batch.float().div(255.0)
        if x.shape[1] == 3 and self.channels == 1:  # an RGB file of a grey image: its three channels are equal
            x = x.mean(1, keepdim=True)
        elif x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != self.channels:
            raise BenchError(f"images have {x.shape[1]} channels; the encoder takes grey (1) or RGB (3) images")
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True,
                              align_corners=False).clamp(0, 1)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def describe(self) -> str:
        colour = "grey" if self.channels == 1 else "rgb"
        return (f"{self.resolution}px {colour}, bilinear antialias, (x/255 - {_nums(self.mean)}) / "
                f"{_nums(self.std)}")


def _nums(values) -> str:
    return ",".join(f"{v:g}" for v in values)


@dataclass
class LoadedEncoder:
    net: Encoder
    preprocess: Preprocessing
    trained: dict  # dataset, split, steps, seed, objective, test_accuracy


def load_encoder(path: Path, device="cpu") -> LoadedEncoder:
    """A file `bench encoder train` wrote; anything else is one BenchError."""
    how = "make one with `bench encoder train DATASET --out FILE`"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle of other objects, a truncated or foreign file: say which file, not why deep
        raise BenchError(f"encoder:{path}: not a bench encoder file ({type(err).__name__}); {how}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise BenchError(f"encoder:{path}: not a bench encoder file (no format '{FORMAT}'); {how}")
    if blob.get("version") != VERSION:
        raise BenchError(f"encoder:{path}: bench encoder format version {blob.get('version')}, this bench reads "
                         f"{VERSION}; retrain it with `bench encoder train`")
    config = EncoderConfig(**blob["config"])
    net = Encoder(config)
    net.load_state_dict(blob["state_dict"])
    pre = blob["preprocessing"]
    preprocess = Preprocessing(pre["resolution"], pre["channels"], tuple(pre["mean"]), tuple(pre["std"]))
    return LoadedEncoder(net.to(device).eval(), preprocess, dict(blob.get("trained", {})))


def encoder_bytes(net: Encoder, preprocess: Preprocessing, trained: dict) -> bytes:
    """The file's bytes: written through a buffer, so they do not depend on the file's name (torch.save names its
    archive after the file) and one encoder has one sha256 wherever it is saved."""
    blob = {"format": FORMAT, "version": VERSION, "config": asdict(net.config),
            "preprocessing": {"resolution": preprocess.resolution, "channels": preprocess.channels,
                              "mean": list(preprocess.mean), "std": list(preprocess.std)},
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
            "trained": trained}
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    return buffer.getvalue()


def _views(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One SimCLR view of a normalised batch: a random crop of 70-100% of the side, shifted, resized back (one affine
    warp), a horizontal flip of half the images, brightness and contrast within 20%."""
    n = x.shape[0]
    scale = 0.7 + 0.3 * torch.rand(n, generator=gen)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (1 - scale).unsqueeze(1)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    brightness = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.2
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.2
    mean = warped.mean(dim=(1, 2, 3), keepdim=True)
    return (warped - mean) * contrast + mean + brightness


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """SimCLR's loss: each view's positive is the other view of its image, its negatives the 2N - 2 other views."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = a.shape[0]
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, positives)


@dataclass
class Trained:
    data: bytes  # the file
    objective: str
    test_accuracy: float | None
    n_test: int


def train_encoder(images: torch.Tensor, labels: torch.Tensor | None, test: tuple[torch.Tensor, torch.Tensor] | None,
                  steps: int, seed: int, batch_size: int = 64, width: int = 32, feature_dim: int = 64,
                  about: dict | None = None) -> Trained:
    """Train on `images` ((N, C, R, R) in [-1, 1]); a classifier when `labels` are given, else SimCLR. Seeded: the
    same call gives the same bytes. `test`: (images, labels) to measure a classifier's accuracy on."""
    from bench.metrics.features import to_uint8  # the quantisation every metric's images go through

    channels, resolution = images.shape[1], images.shape[-1]
    preprocess = Preprocessing(resolution, channels, (0.5,) * channels, (0.5,) * channels)
    inputs = preprocess(to_uint8(images))
    classes = int(labels.max()) + 1 if labels is not None else 0
    with torch.random.fork_rng(devices=[]):  # the layers' initialisation draws from torch's global generator
        torch.manual_seed(seed)
        net = Encoder(EncoderConfig(channels, resolution, width, feature_dim, classes))
    gen = torch.Generator().manual_seed(seed + 1)
    optimizer = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    net.train()
    order = torch.randperm(len(inputs), generator=gen)
    at = 0
    for _ in range(steps):
        if at + batch_size > len(order):  # a new epoch: a new permutation (the last partial batch dropped)
            order, at = torch.randperm(len(inputs), generator=gen), 0
        idx = order[at:at + batch_size]
        at += batch_size
        x = inputs[idx]
        if classes:
            shifted = torch.roll(x, shifts=tuple(torch.randint(-1, 2, (2,), generator=gen).tolist()), dims=(2, 3))
            loss = F.cross_entropy(net.head(net(shifted)), labels[idx])
        else:
            loss = nt_xent(net.head(net(_views(x, gen))), net.head(net(_views(x, gen))))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    net.eval()
    accuracy, n_test = None, 0
    if classes and test is not None and len(test[0]):
        with torch.inference_mode():
            logits = torch.cat([net.head(net(preprocess(to_uint8(chunk)))) for chunk in test[0].split(256)])
        accuracy, n_test = float((logits.argmax(1) == test[1]).float().mean()), len(test[0])
    objective = f"classifier ({classes} classes)" if classes else "simclr"
    trained = {**(about or {}), "steps": steps, "seed": seed, "batch_size": batch_size, "objective": objective,
               **({"test_accuracy": accuracy} if accuracy is not None else {})}
    return Trained(encoder_bytes(net, preprocess, trained), objective, accuracy, n_test)
