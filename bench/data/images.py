"""Decoding one image file safely: every folder source (datasets, `bench fid` folders) reads files through here.

- A file that cannot be decoded is skipped with a logged warning, never fatal to the whole folder.
- A file that declares more than MAX_IMAGE_PIXELS pixels is skipped before it is decoded: a PNG can declare
  30000 x 30000 in a few hundred bytes and would take gigabytes to decode (a "decompression bomb").
- 16-bit images (PNG's 16-bit grey) are scaled to 8 bits (x / 257), not clipped at 255 as PIL's convert does.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 8192 * 8192  # 67,108,864: far above any GAN training image, far below a bomb's claim


def decode(path: Path, mode: str, composite_alpha: bool = True) -> np.ndarray | None:
    """(H, W, C) uint8 in `mode` ("L" or "RGB"), or None (logged) when the file is unreadable or too large.

    With `composite_alpha`, transparent images are laid on white (LEGO renders); without it, alpha is dropped
    the way clean-fid's `convert("RGB")` drops it.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    log.warning("skipping image %s: it declares %dx%d pixels, more than the limit of %d "
                                "(MAX_IMAGE_PIXELS in bench/data/images.py)", path, width, height, MAX_IMAGE_PIXELS)
                    return None
                img.load()
                img = _to_8bit(img)
                if composite_alpha and img.mode in ("RGBA", "LA", "P", "PA"):
                    img = img.convert("RGBA")
                    img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
                img = img.convert(mode)
    except Image.DecompressionBombError:  # beyond twice PIL's own limit, refused before our size check
        log.warning("skipping image %s: it declares more pixels than the limit of %d (MAX_IMAGE_PIXELS in "
                    "bench/data/images.py)", path, MAX_IMAGE_PIXELS)
        return None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:  # SyntaxError: some broken headers
        log.warning("skipping unreadable image %s: %s", path, err)
        return None
    array = np.asarray(img, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header; None when the file cannot be opened."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def is_grey(path: Path) -> bool | None:
    """Whether a file holds a grey image (by its header); None when it cannot be opened."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.mode in ("L", "1", "I;16", "I;16B", "I;16L", "I")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def _to_8bit(img):
    """16-bit grey (PIL modes I;16*, and I as PNG's 16-bit grey opens) -> 8-bit grey by x / 257."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":
        wide = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), mode="L")
    return img
