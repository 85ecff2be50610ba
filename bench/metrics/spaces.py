"""Feature spaces: the network every metric (FID/FD, KID, precision/recall, density/coverage, AuthPct, the
memorisation check's C_T) measures in, named in a suite's `eval.features` and by `--features`:

- `inception` (the default): NVIDIA's Inception pool3 (inception.py), preprocessed as clean-fid (features.py);
- `encoder:PATH`: the penultimate features of an encoder `bench encoder train` made (encoder.py); `encoder:NAME`
  names one bench ships (bench/references/encoders/NAME.pt: `digits`, 98.9% on the digits' test split);
- `dinov2:PATH`: DINOv2's CLS token from the user's local weights file (dinov2.py); a file that is not an official
  checkpoint needs `own_weights` (`--own-weights`, `eval.features_own_weights: true`) and is recorded as such.

Each space gives its protocol entries (its name, weights sha256, dimension, preprocessing), which every record
carries, and the entries it adds to the reference-statistics cache key; Inception adds none, so its cache files and
numbers are the ones bench computed before spaces existed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.errors import BenchError
from bench.metrics.dinov2 import OFFICIAL_SHA256, PREPROCESSING, load_vit, official_name, preprocess
from bench.metrics.encoder import load_encoder
from bench.metrics.inception import FEATURE_DIM, file_sha256

KINDS = ("inception", "encoder", "dinov2")
SPELLING = ("inception, encoder:PATH (from `bench encoder train`; encoder:digits is bench's own) or dinov2:PATH "
            "(DINOv2 weights, a local file)")
SHIPPED = Path(__file__).resolve().parents[1] / "references" / "encoders"  # encoders bench ships, by name
OWN_WEIGHTS = "--own-weights (in a suite: eval.features_own_weights: true)"


@dataclass(frozen=True)
class FeatureSpace:
    kind: str  # one of KINDS
    path: Path | None = None  # the weights file, resolved; None for Inception (the installed package's)
    own_weights: bool = False  # dinov2: the user vouches for a file that is not an official checkpoint

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


INCEPTION = FeatureSpace("inception")


def parse_space(text: str | None, own_weights: bool = False) -> FeatureSpace:
    """`inception`, `encoder:PATH` or `dinov2:PATH` (a relative PATH from the working folder); None is Inception."""
    text = (text or "inception").strip()
    kind, _, path = text.partition(":")
    if kind not in KINDS or (kind == "inception") != (not path):
        raise BenchError(f"feature space '{text}': use {SPELLING}")
    if own_weights and kind != "dinov2":
        raise BenchError(f"own weights (--own-weights, eval.features_own_weights) are for dinov2:PATH only; "
                         f"'{text}' names its weights itself")
    if kind == "inception":
        return INCEPTION
    return FeatureSpace(kind, shipped(path) if kind == "encoder" else Path(path).expanduser().resolve(), own_weights)


def shipped(path: str) -> Path:
    """An encoder's file: a name without folder or suffix is one bench ships (bench/references/encoders/NAME.pt)
    unless the working folder holds a file of that name; anything else a path from the working folder."""
    local = Path(path).expanduser()
    own = SHIPPED / f"{path}.pt"
    if "/" not in path and not local.suffix and not local.exists() and own.is_file():
        return own
    return local.resolve()


def eval_spaces(features: str | None, also: list[str] | None, own_weights: bool | None) \
        -> tuple[FeatureSpace, list[FeatureSpace]]:
    """A suite's eval.features and eval.also_features: the space of every metric, and the further ones of FD;
    eval.features_own_weights vouches for whichever names dinov2:PATH."""
    primary = parse_space(features, bool(own_weights) and (features or "").strip().startswith("dinov2:"))
    return primary, parse_spaces(also or (), bool(own_weights), primary)


def recorded_file(path: Path) -> str:
    """A weights file as records name it: an encoder bench ships by its place in the package (the same on every
    clone, so reports do not depend on where bench lives), any other file by its resolved path."""
    return f"bench/references/encoders/{path.name}" if path.parent == SHIPPED else str(path)


def parse_spaces(texts, own_weights: bool = False, primary: FeatureSpace = INCEPTION) -> list[FeatureSpace]:
    """eval.also_features / --also-features: further spaces for FD, one per kind, none the primary's."""
    spaces = [parse_space(t, own_weights and t.strip().startswith("dinov2:")) for t in texts]
    kinds = [s.kind for s in spaces]
    for kind in kinds:
        if kinds.count(kind) > 1 or kind == primary.kind:
            raise BenchError(f"also_features {', '.join(texts)}: at most one space of each kind, and not the "
                             f"primary's ({primary.kind}): FD in {kind} space is logged as fd_{kind}")
    return spaces


@dataclass
class LoadedSpace:
    net: torch.nn.Module  # preprocessed images -> (B, feature_dim)
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None  # uint8 batch -> input; None: Inception's (FID mode)
    sha256: str
    feature_dim: int
    protocol: dict[str, str]  # features, weights_sha256, feature_dim (+ preprocessing, architecture, weights)
    cache_fields: dict = field(default_factory=dict)  # added to the reference statistics' cache key


def inception_space(net, sha256: str) -> LoadedSpace:
    return LoadedSpace(net, None, sha256, FEATURE_DIM, {"features": "inception", "weights_sha256": sha256,
                                                        "feature_dim": str(FEATURE_DIM)})


def checked_file(space: FeatureSpace) -> str:
    """The sha256 of a space's weights file; a missing file, or (dinov2) a file that is not an official checkpoint
    without own_weights, is one BenchError. Cheap: for a suite's preflight."""
    if not space.path.is_file():
        make = "`bench encoder train DATASET --out FILE`" if space.kind == "encoder" else \
            "download DINOv2's weights (e.g. dinov2_vitb14_pretrain.pth) yourself"
        raise BenchError(f"{space}: no such file; {make}")
    sha = file_sha256(space.path)
    if space.kind == "dinov2" and official_name(sha) is None and not space.own_weights:
        known = f"{len(OFFICIAL_SHA256)} known" if OFFICIAL_SHA256 else "none verified yet"
        raise BenchError(f"{space}: sha256 {sha[:16]}... is not an official DINOv2 checkpoint (bench/metrics/"
                         f"dinov2.py OFFICIAL_SHA256: {known}); if these are weights of your own, pass {OWN_WEIGHTS} "
                         "and the record says own weights")
    return sha


def load_space(space: FeatureSpace, device="cpu") -> LoadedSpace:
    """An encoder's or DINOv2's network with its preprocessing and protocol (Inception: evaluate.py's own path)."""
    sha = checked_file(space)
    protocol = {"features": space.kind, "weights_sha256": sha, "features_file": recorded_file(space.path)}
    if space.kind == "encoder":
        encoder = load_encoder(space.path, device)
        dim = encoder.net.config.feature_dim
        protocol["features_preprocessing"] = encoder.preprocess.describe()
        trained = encoder.trained
        protocol["features_trained"] = ", ".join(f"{k}={trained[k]}" for k in ("dataset", "split", "objective",
                                                                                 "steps", "seed") if k in trained)
        loaded = LoadedSpace(encoder.net, encoder.preprocess, sha, dim, protocol)
    else:
        vit = load_vit(space.path, device)
        dim = vit.feature_dim
        official = official_name(sha)
        protocol.update(features_preprocessing=PREPROCESSING, features_architecture=vit.architecture,
                        features_weights=f"official {official}" if official else "own")
        loaded = LoadedSpace(vit.net, preprocess, sha, dim, protocol)
    protocol["feature_dim"] = str(dim)
    loaded.cache_fields = {"features": space.kind, "features_preprocessing": protocol["features_preprocessing"]}
    return loaded
