"""LEGO minifigures and their faces (the seed study's datasets), as `bench data build lego` builds them.

The project never ships these images: each user builds them from BrickLink on their own machine into
`<data_root>/lego/` (minifigs/ at 150 px; faces/<label>/ at 100 px, labels bald / hair / hat / helmet).
Both datasets have one split, 'train', the whole set, as in the study (shared/seeds/000_*.txt, section 6).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

from bench.data.base import ImageSet, register_dataset
from bench.data.folder import load_image_folder
from bench.errors import DatasetNotFound
from scrapers.face_labels import FACE_LABELS

LEGO_DATASETS = ("lego-minifigs", "lego-faces")


def lego_root(data_root: Path) -> Path:
    return Path(data_root) / "lego"


def read_manifest(name: str, data_root: Path) -> dict:
    """The build's manifest; a missing build is a one-line error that says how to make it."""
    root = lego_root(data_root)
    manifest = root / "manifest.json"
    if not manifest.exists():
        raise DatasetNotFound(f"dataset '{name}' is not built (no {manifest}): run `bench data build lego` "
                              f"(add `--out {root}` for this data root)")
    return json.loads(manifest.read_text(encoding="utf-8"))


@register_dataset("lego-minifigs",
                  "BrickLink minifigures, full figure on white, 150 px (build: bench data build lego)",
                  splits=("train",))
def load_lego_minifigs(data_root: Path, split: str, resolution: int) -> ImageSet:
    read_manifest("lego-minifigs", data_root)
    return load_image_folder(lego_root(data_root) / "minifigs", resolution, name="lego-minifigs")


@register_dataset("lego-faces", "BrickLink minifigure faces, 100 px, labels bald/hair/hat/helmet "
                  "(build: bench data build lego)", splits=("train",))
def load_lego_faces(data_root: Path, split: str, resolution: int) -> ImageSet:
    read_manifest("lego-faces", data_root)
    found = load_image_folder(lego_root(data_root) / "faces", resolution, name="lego-faces")
    # A build may lack a label (a small --max-items crawl); the classes stay the four of the study regardless,
    # so a conditional model's label ids mean the same thing on every build.
    to_study_ids = torch.tensor([FACE_LABELS.index(label) for label in found.classes], dtype=torch.long)
    return ImageSet(found.images, to_study_ids[found.labels], list(FACE_LABELS))


def describe_lego(name: str, data_root: Path) -> list[str]:
    """Lines for `bench data info`: counts (per label for faces), resolution, where the build came from."""
    manifest = read_manifest(name, data_root)
    root = lego_root(data_root)
    counts = manifest["counts"]
    kind = "minifigs" if name == "lego-minifigs" else "faces"
    size = manifest["sizes"][kind]
    files = [path for path in manifest["files"] if path.startswith(f"{kind}/")]
    missing = sum(not (root / path).exists() for path in files)
    lines = [f"{name}: {len(files)} images, {size}x{size} px RGB, under {root / kind} (split: train = all)"]
    if kind == "faces":
        per_label = ", ".join(f"{label} {n}" for label, n in counts["faces_per_label"].items())
        lines.append(f"labels: {per_label}; unlabelled figures (no face): {counts['unlabelled']}")
    source = manifest.get("source", {})
    categories = ",".join(source.get("categories") or []) or "all"
    dates = manifest.get("crawl_dates") or ["?"]
    lines.append(f"crawl: {counts['crawled']} items from {source.get('base_url', '?')} "
                 f"(categories {categories}, max items {source.get('max_items') or 'none'}), "
                 f"crawled {dates[0]}..{dates[-1]}")
    reasons = Counter(entry["reason"].split(" (")[0] for entry in manifest.get("skipped", []))
    skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items())) or "none"
    lines.append(f"manifest: {len(manifest['files'])} files with sha256, {missing} missing on disk; "
                 f"skipped: {skipped}; duplicates dropped: {counts['duplicates']}")
    return lines
