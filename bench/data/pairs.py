"""Image-to-image datasets: two domains A and B (bench.data.PairSet).

- `unpaired`: CycleGAN's layout, `<path>/trainA`, `trainB`, `testA`, `testB` (Zhu et al. 2017's datasets).
- `paired`: Pix2Pix's layout, `<path>/<split>/` holding A|B side by side in each image (Isola et al. 2017's
  archives: facades, edges2shoes, ...), or `<path>/<split>/A` and `<path>/<split>/B` with matching file names.
  Option `swap: true` exchanges A and B (facades' archive holds photo|labels; labels -> photo is B -> A).
- `digits-thick` (unpaired toy, shipped): scikit-learn's digits (A) and the same kind of digits with strokes made
  thicker by a 3x3 dilation (B), A and B drawn from disjoint halves of the images, so no example has its partner.
- `digits-edges` (paired toy, shipped): a digit's edge map (A: the morphological gradient, dilation minus erosion)
  and the digit itself (B), as edges2shoes.
Corrupt files are skipped and logged as in every folder source; grey domains stay grey unless the other is colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.data.base import PairSet, register_dataset, resize, uint8_to_unit
from bench.data.digits import load_digits
from bench.data.folder import IMAGE_SUFFIXES, all_grey, list_images, load_image_folder
from bench.data.images import decode
from bench.errors import BenchError, DatasetNotFound


def _root(data_root: Path, path: str | None, name: str) -> Path:
    if path is None:
        raise BenchError(f"dataset '{name}' needs a path: use `{{name: {name}, path: my/data}}` in the suite")
    folder = Path(path).expanduser()
    if not folder.is_absolute() and not folder.exists():
        folder = data_root / folder
    if not folder.is_dir():
        raise DatasetNotFound(f"dataset '{name}': folder {folder} does not exist; point `path` at it (or run "
                              "`bench data download NAME` for a public archive)")
    return folder


@register_dataset("unpaired", "two image domains in CycleGAN's layout (option `path`: trainA/ trainB/ testA/ "
                  "testB/)")
def load_unpaired(data_root: Path, split: str, resolution: int, path: str | None = None,
                  swap: bool = False) -> PairSet:
    root = _root(data_root, path, "unpaired")
    folders = [root / f"{split}{side}" for side in "AB"]
    missing = [f.name for f in folders if not f.is_dir()]
    if missing:
        raise DatasetNotFound(f"dataset 'unpaired': {root} has no {' or '.join(missing)} folder; CycleGAN's layout "
                              f"is {split}A/ and {split}B/")
    files = [list_images(f) for f in folders]
    mode = "L" if all(all_grey(f) for f in files) else "RGB"
    a, b = (load_image_folder(f, resolution, "unpaired", mode).images for f in folders)
    return PairSet(b, a, False) if swap else PairSet(a, b, False)


@register_dataset("paired", "aligned pairs in Pix2Pix's layout (option `path`: <split>/ of A|B images, or <split>/A "
                  "and <split>/B with matching names; `swap: true` for B -> A)", splits=("train", "test", "val"))
def load_paired(data_root: Path, split: str, resolution: int, path: str | None = None,
                swap: bool = False) -> PairSet:
    root = _root(data_root, path, "paired") / split
    if not root.is_dir():
        raise DatasetNotFound(f"dataset 'paired': {root} does not exist; Pix2Pix's layout is <path>/{split}/")
    if (root / "A").is_dir() and (root / "B").is_dir():
        a, b = _matching_folders(root)
    else:
        a, b = _side_by_side(root, resolution)
    a, b = resize(a, resolution), resize(b, resolution)
    return PairSet(b, a, True) if swap else PairSet(a, b, True)


def _matching_folders(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    names = [{p.relative_to(root / side): p for p in list_images(root / side)} for side in "AB"]
    only_a, only_b = sorted(set(names[0]) - set(names[1])), sorted(set(names[1]) - set(names[0]))
    if only_a or only_b:
        example = (only_a or only_b)[0]
        raise BenchError(f"dataset 'paired': {len(only_a)} files in {root / 'A'} and {len(only_b)} in "
                         f"{root / 'B'} have no partner of the same name (e.g. {example}); pairs must match")
    common = sorted(names[0])
    mode = "L" if all_grey([names[0][n] for n in common]) and all_grey([names[1][n] for n in common]) else "RGB"
    a, b = [], []
    for name in common:
        left, right = decode(names[0][name], mode), decode(names[1][name], mode)
        if left is None or right is None:  # an unreadable half loses its pair (logged by decode)
            continue
        a.append(_square(left))
        b.append(_square(right))
    return _stack(a, root), _stack(b, root)


def _side_by_side(root: Path, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    files = list_images(root)
    if not files:
        raise DatasetNotFound(f"dataset 'paired': no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    mode = "L" if all_grey(files) else "RGB"
    a, b = [], []
    for path in files:
        array = decode(path, mode)
        if array is None:
            continue
        height, width = array.shape[:2]
        if width != 2 * height:
            raise BenchError(f"dataset 'paired': {path} is {width}x{height}; an A|B pair is twice as wide as high "
                             "(or use <split>/A and <split>/B folders)")
        a.append(_square(array[:, :height]))
        b.append(_square(array[:, height:]))
    return _stack(a, root), _stack(b, root)


def _square(array: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 -> (C, S, S) in [-1, 1], centre-cropped to a square."""
    height, width = array.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return uint8_to_unit(torch.from_numpy(np.ascontiguousarray(array[top:top + side, left:left + side]))
                         .permute(2, 0, 1))


def _stack(images: list[torch.Tensor], root: Path) -> torch.Tensor:
    if not images:
        raise DatasetNotFound(f"dataset 'paired': no readable pair under {root}")
    sizes = {tuple(i.shape) for i in images}
    if len(sizes) > 1:  # different sizes: bring them to the first one's before stacking
        size = images[0].shape[-1]
        images = [resize(i[None], size)[0] for i in images]
    return torch.stack(images)


# the toy pairs, made from scikit-learn's digits ---------------------------------------------------------------

def _digits(data_root: Path, split: str, resolution: int) -> torch.Tensor:
    """The digits split at `resolution`, as load_dataset("digits", ...) gives it."""
    return resize(load_digits(data_root, split, resolution).images, resolution)


def thicken(images: torch.Tensor) -> torch.Tensor:
    """Bright strokes on a dark ground made thicker: a 3x3 grey dilation (max filter)."""
    return F.max_pool2d(images, 3, stride=1, padding=1)


def edges(images: torch.Tensor) -> torch.Tensor:
    """The morphological gradient (dilation - erosion), rescaled to [-1, 1]: bright where strokes have edges."""
    gradient = thicken(images) + F.max_pool2d(-images, 3, stride=1, padding=1)  # max - min over 3x3
    return (gradient - 1).clamp(-1, 1)


@register_dataset("digits-thick", "toy unpaired pair (shipped): digits <-> digits with thicker strokes, from disjoint "
                  "halves of the images")
def load_digits_thick(data_root: Path, split: str, resolution: int) -> PairSet:
    images = _digits(data_root, split, resolution)
    return PairSet(images[0::2], thicken(images[1::2]), False)


@register_dataset("digits-edges", "toy paired pair (shipped): a digit's edge map -> the digit (as edges2shoes)")
def load_digits_edges(data_root: Path, split: str, resolution: int) -> PairSet:
    images = _digits(data_root, split, resolution)
    return PairSet(edges(images), images, True)

