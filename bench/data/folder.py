"""Any folder of images. Class subfolders become labels; `<path>/<split>/` is used when it exists.

Images are converted to RGB (or kept grey when every image is grey), centre-cropped to a square and resized to the
suite's resolution. Corrupt or unreadable files, and files declaring more than MAX_IMAGE_PIXELS pixels, are skipped
and logged, never fatal (bench/data/images.py); 16-bit images are scaled to 8 bits.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from bench.data.base import ImageSet, register_dataset, resize, uint8_to_unit
from bench.data.images import decode, is_grey
from bench.errors import BenchError, DatasetNotFound

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_image(path: Path, resolution: int, mode: str):
    """Decode one file to a square uint8 array (H, W, C) composited on white; None (logged) when it cannot be read."""
    from PIL import Image

    arr = decode(path, mode)
    if arr is None:
        return None
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def load_image_folder(folder: Path, resolution: int, name: str = "folder", mode: str | None = None) -> ImageSet:
    if not folder.is_dir():
        raise DatasetNotFound(f"dataset '{name}': folder {folder} does not exist; point `path` at a folder of images")
    files = list_images(folder)
    if not files:
        raise DatasetNotFound(f"dataset '{name}': no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    class_dirs = sorted({p.relative_to(folder).parts[0] for p in files if len(p.relative_to(folder).parts) > 1})
    labelled = bool(class_dirs) and all(len(p.relative_to(folder).parts) > 1 for p in files)
    mode = mode or ("L" if all_grey(files) else "RGB")
    arrays, labels, ids = [], [], []
    for path in files:
        arr = read_image(path, resolution, mode)
        if arr is None:
            continue
        arrays.append(arr)
        ids.append(path.relative_to(folder).as_posix())  # what a holdout places it by (bench/data/holdout.py)
        if labelled:
            labels.append(class_dirs.index(path.relative_to(folder).parts[0]))
    if not arrays:
        raise DatasetNotFound(f"dataset '{name}': none of the {len(files)} images under {folder} could be read")
    x = uint8_to_unit(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous())
    y = torch.tensor(labels, dtype=torch.long) if labelled else None
    return ImageSet(resize(x, resolution), y, class_dirs if labelled else [], ids)


def all_grey(files: list[Path]) -> bool:
    # a sample decides; decoding every header twice is not worth it. Unreadable files do not vote.
    return all(grey is not False for grey in map(is_grey, files[:64]))


@register_dataset("folder", "any image folder (option `path`); class subfolders become labels",
                  splits=("train", "test"))
def load_folder(data_root: Path, split: str, resolution: int, path: str | None = None) -> ImageSet:
    if path is None:
        raise BenchError("dataset 'folder' needs a path: use `{name: folder, path: my/images}` in the suite")
    folder = Path(path)
    if not folder.is_absolute() and not folder.exists():
        folder = data_root / folder
    if (folder / split).is_dir():
        folder = folder / split
    elif split != "train":
        raise DatasetNotFound(f"dataset 'folder': {folder} has no '{split}' subfolder; add one or use split 'train'")
    return load_image_folder(folder, resolution)
