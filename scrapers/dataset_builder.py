"""Turn a finished crawl (<out>/.crawl/items.jsonl + images) into the two LEGO datasets, byte for byte the
same on every rebuild of the same crawl.

    <out>/minifigs/<item>.png          the full figure on white, centred and padded to a square, 150 px
    <out>/faces/<label>/<item>.png     head and shoulders, 100 px, label in bald / hair / hat / helmet
    <out>/labels.csv                   item, name, category, subcategory, year, face_label, label_source
    <out>/manifest.json                per file: sha256, source URL, crawl date; counts; what was skipped

Sizes follow the seed study (shared/seeds/000_*.txt, sections 6.2-6.5): 2,291 minifigures at 150 px, faces
at 100 px. Corrupt and empty images are skipped and logged, never fatal; figures whose rendered image is
identical to an earlier item's (re-released prints) are kept once, under the lowest item number.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageChops

from bench.errors import BenchError
from scrapers.face_labels import FACE_LABELS
from scrapers.pipelines import safe_file_stem
from scrapers.settings import CrawlConfig, CrawlPaths

log = logging.getLogger(__name__)

MINIFIG_SIZE = 150
FACE_SIZE = 100
# A minifigure is about 4 head-heights tall; the top 45 % of its bounding box holds hair or headgear, the head
# and the shoulders. The square box of that side, centred on the box's middle, is the face crop.
FACE_BOX_FRACTION = 0.45
FIGURE_MARGIN_FRACTION = 0.04  # white border around the full figure, so no limb touches the frame
ALPHA_VISIBLE = 8  # alpha above this is figure, below it background
WHITE_DISTANCE = 16  # in images without transparency, a pixel this close to white is background
PNG_COMPRESS_LEVEL = 9  # fixed, so the same pixels always encode to the same bytes
WHITE = (255, 255, 255)

LABELS_COLUMNS = ("item", "name", "category", "subcategory", "year", "face_label", "label_source")


class UnusableImage(Exception):
    """An image that cannot become a training example; the message is the recorded reason."""


@dataclass(frozen=True)
class Figure:
    rgb: Image.Image  # composited on white
    box: tuple[int, int, int, int]  # left, top, right, bottom of the figure's visible pixels


@dataclass
class BuildSummary:
    minifigs: int = 0
    faces_per_label: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FACE_LABELS, 0))
    unlabelled: int = 0
    skipped: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)

    @property
    def faces(self) -> int:
        return sum(self.faces_per_label.values())


def load_figure(path: Path) -> Figure:
    """Decode, composite on white and find the figure; UnusableImage when corrupt or empty."""
    try:
        with Image.open(path) as opened:
            opened.load()
            rgba = opened.convert("RGBA")
    except Exception as err:  # PIL raises OSError, ValueError, SyntaxError... on broken files: all corrupt
        raise UnusableImage(f"corrupt image ({type(err).__name__})") from err
    alpha = rgba.getchannel("A")
    background = Image.new("RGBA", rgba.size, WHITE + (255,))
    rgb = Image.alpha_composite(background, rgba).convert("RGB")
    if alpha.getextrema()[0] < 255:
        visible = alpha.point(lambda a: 255 if a > ALPHA_VISIBLE else 0)
    else:
        red, green, blue = ImageChops.invert(rgb).split()  # each channel's distance from white
        distance = ImageChops.lighter(ImageChops.lighter(red, green), blue)
        visible = distance.point(lambda d: 255 if d > WHITE_DISTANCE else 0)
    box = visible.getbbox()
    if box is None:
        raise UnusableImage("empty image (nothing but background)")
    return Figure(rgb, box)


def _crop_on_white(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """Crop `box`, which may reach past the image's edges; the outside is white (PIL would make it black)."""
    left, top, right, bottom = box
    canvas = Image.new("RGB", (right - left, bottom - top), WHITE)
    inside = (max(left, 0), max(top, 0), min(right, image.width), min(bottom, image.height))
    if inside[0] < inside[2] and inside[1] < inside[3]:
        canvas.paste(image.crop(inside), (inside[0] - left, inside[1] - top))
    return canvas


def render_minifig(figure: Figure) -> Image.Image:
    left, top, right, bottom = figure.box
    width, height = right - left, bottom - top
    side = round(max(width, height) * (1 + 2 * FIGURE_MARGIN_FRACTION))
    square_left = left - (side - width) // 2
    square_top = top - (side - height) // 2
    square = _crop_on_white(figure.rgb, (square_left, square_top, square_left + side, square_top + side))
    return square.resize((MINIFIG_SIZE, MINIFIG_SIZE), Image.LANCZOS)


def render_face(figure: Figure) -> Image.Image:
    left, top, right, bottom = figure.box
    side = max(1, round(FACE_BOX_FRACTION * (bottom - top)))
    box_left = round((left + right - side) / 2)
    face = _crop_on_white(figure.rgb, (box_left, top, box_left + side, top + side))
    return face.resize((FACE_SIZE, FACE_SIZE), Image.LANCZOS)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)  # PIL writes no time or text chunks
    return buffer.getvalue()


def read_crawled_items(paths: CrawlPaths) -> list[dict]:
    if not paths.items.exists():
        raise BenchError(f"no finished crawl under {paths.root}: run `bench data build lego` "
                         "(without --no-crawl) to crawl first")
    lines = paths.items.read_text(encoding="utf-8").splitlines()
    items = sorted((json.loads(line) for line in lines if line.strip()), key=lambda item: item["item"])
    if not items:
        raise BenchError(f"the crawl under {paths.root} found no minifigures; check --base-url and "
                         "--categories and the crawl log, then rerun `bench data build lego`")
    return items


def build_datasets(out: Path) -> BuildSummary:
    """Rebuild minifigs/, faces/, labels.csv and manifest.json under `out` from `out/.crawl`."""
    out = Path(out)
    paths = CrawlPaths(out)
    items = read_crawled_items(paths)
    source = CrawlConfig.load(out).source_summary() if paths.config.exists() else {}
    for folder in (out / "minifigs", out / "faces"):
        shutil.rmtree(folder, ignore_errors=True)  # builder-owned: stale files of an older crawl must go
    (out / "minifigs").mkdir(parents=True)

    summary = BuildSummary()
    files: dict[str, dict] = {}
    kept_rows: list[dict] = []
    first_with_digest: dict[str, str] = {}
    for item in items:
        number = item["item"]
        try:
            if not item.get("image_file"):
                raise UnusableImage("no image was downloaded")
            figure = load_figure(paths.images / item["image_file"])
        except UnusableImage as err:
            log.warning("skipping %s: %s (%s)", number, err, item.get("image_url"))
            summary.skipped.append({"item": number, "reason": str(err)})
            continue
        minifig = png_bytes(render_minifig(figure))
        digest = hashlib.sha256(minifig).hexdigest()
        if digest in first_with_digest:
            log.info("skipping %s: same image as %s", number, first_with_digest[digest])
            summary.duplicates.append({"item": number, "same_image_as": first_with_digest[digest]})
            continue
        first_with_digest[digest] = number
        provenance = {"item": number, "source_url": item["image_url"], "crawl_date": item["crawl_date"]}
        stem = safe_file_stem(number)
        _write(out, f"minifigs/{stem}.png", minifig, provenance, files)
        summary.minifigs += 1
        label = item.get("face_label")
        if label in FACE_LABELS:
            _write(out, f"faces/{label}/{stem}.png", png_bytes(render_face(figure)), provenance, files)
            summary.faces_per_label[label] += 1
        else:
            summary.unlabelled += 1
        kept_rows.append(item)

    labels_csv = _labels_csv(kept_rows)
    (out / "labels.csv").write_bytes(labels_csv)
    manifest = {
        "dataset": "lego",
        "source": source,
        "sizes": {"minifigs": MINIFIG_SIZE, "faces": FACE_SIZE},
        "face_box_fraction": FACE_BOX_FRACTION,
        "counts": {"crawled": len(items), "minifigs": summary.minifigs, "faces": summary.faces,
                   "faces_per_label": summary.faces_per_label, "unlabelled": summary.unlabelled,
                   "skipped": len(summary.skipped), "duplicates": len(summary.duplicates)},
        "crawl_dates": sorted({item["crawl_date"] for item in kept_rows}),
        "labels_csv_sha256": hashlib.sha256(labels_csv).hexdigest(),
        "files": files,
        "skipped": summary.skipped,
        "duplicates": summary.duplicates,
    }
    manifest_text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (out / "manifest.json").write_text(manifest_text, encoding="utf-8")
    log.info("built %d minifigs and %d faces (%s) under %s; skipped %d, duplicates %d", summary.minifigs,
             summary.faces, ", ".join(f"{k} {v}" for k, v in summary.faces_per_label.items()), out,
             len(summary.skipped), len(summary.duplicates))
    return summary


def _write(out: Path, relative: str, data: bytes, provenance: dict, files: dict[str, dict]) -> None:
    target = out / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    files[relative] = {**provenance, "sha256": hashlib.sha256(data).hexdigest()}


def _labels_csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LABELS_COLUMNS)
    for row in rows:
        writer.writerow(["" if row.get(column) is None else row[column] for column in LABELS_COLUMNS])
    return buffer.getvalue().encode("utf-8")
