"""`bench data ...`: build the datasets that are built, not downloaded (LEGO), and look inside any dataset.

Scrapy and the builder are imported inside the commands: `bench --help` should not pay for them.
"""

from __future__ import annotations

from pathlib import Path

import typer

from bench.data.base import DATASETS, PairSet, default_data_root
from bench.data.lego import LEGO_DATASETS, describe_lego
from bench.errors import BenchError
from scrapers.settings import DEFAULT_BASE_URL, DEFAULT_IMAGE_BASE_URL, POLITE_DELAY_SECONDS

app = typer.Typer(help="Build and inspect datasets.", no_args_is_help=True, rich_markup_mode=None)

BUILDABLE = ("lego",)


@app.command()
def build(
    which: str = typer.Argument(..., help="What to build; known: lego (BrickLink minifigures, faces)."),
    out: Path | None = typer.Option(None, help="Output folder (default: <data root>/lego, the data root "
                                               "being $BENCH_DATA or ./data)."),
    base_url: str = typer.Option(DEFAULT_BASE_URL, help="The catalogue (a mirror, a test site)."),
    image_base_url: str = typer.Option(DEFAULT_IMAGE_BASE_URL,
                                       help="Images; absolute image URLs found in pages are used as is."),
    categories: str | None = typer.Option(None, help="Comma-separated category ids, e.g. 65,768 "
                                                     "(default: every minifigure category)."),
    max_items: int | None = typer.Option(None, help="Stop after this many minifigures."),
    delay: float = typer.Option(POLITE_DELAY_SECONDS,
                                help="Seconds between requests (below 1 only for a local test site)."),
    no_crawl: bool = typer.Option(False, "--no-crawl", help="Rebuild from the existing crawl, offline."),
) -> None:
    """Crawl BrickLink politely (robots.txt, one request at a time, cached); build lego-minifigs, lego-faces.

    Each figure costs three requests (item page, inventory, image), so the whole catalogue (many thousands of
    figures) takes many hours at one request per second; --categories and --max-items narrow it. A rerun or a
    resumed crawl fetches nothing it already has (the HTTP cache lives in <out>/.crawl).
    """
    if which not in BUILDABLE:
        raise BenchError(f"cannot build '{which}': buildable datasets are {', '.join(BUILDABLE)} "
                         "(the others are read from the data root or downloaded)")
    # Scrapy (under the crawler and the builder) loads when the command runs, not for every `bench` command
    from scrapers.crawl import crawl_in_subprocess
    from scrapers.dataset_builder import build_datasets
    from scrapers.settings import CrawlConfig, parse_categories

    config = CrawlConfig(out=out if out is not None else default_data_root() / "lego", base_url=base_url,
                         image_base_url=image_base_url, categories=parse_categories(categories),
                         max_items=max_items, delay=delay)
    if not no_crawl:
        typer.echo(f"crawling {config.base_url} into {config.paths.root} "
                   f"({config.delay:g} s between requests)")
        crawl_in_subprocess(config)
    summary = build_datasets(config.out)
    per_label = ", ".join(f"{label} {n}" for label, n in summary.faces_per_label.items())
    typer.echo(f"built {summary.minifigs} minifigs and {summary.faces} faces ({per_label}) "
               f"under {config.out}; skipped {len(summary.skipped)}, duplicates {len(summary.duplicates)}, "
               f"unlabelled {summary.unlabelled}")


@app.command()
def info(
    name: str = typer.Argument(..., help="A registered dataset, e.g. lego-faces."),
    data_root: Path | None = typer.Option(None, help="Data root (default: $BENCH_DATA or ./data)."),
) -> None:
    """Counts, resolution and provenance of a dataset (others: count, shape and classes at native size)."""

    root = data_root if data_root is not None else default_data_root()
    if name in LEGO_DATASETS:
        for line in describe_lego(name, root):
            typer.echo(line)
        return
    if name not in DATASETS:
        raise BenchError(f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))}")
    entry = DATASETS[name]
    # The loader itself, not load_dataset: that would resize to a suite's resolution. 64 only matters to
    # loaders without a native size (image folders).
    data = entry.load(root, entry.splits[0], 64)
    if isinstance(data, PairSet):  # two domains for translation
        kind = "paired (a[i] and b[i] are one example)" if data.paired else "unpaired"
        typer.echo(f"{name} ({entry.splits[0]}): {kind}; domain A {len(data.a)} images, shape "
                   f"{tuple(data.a.shape[1:])}; domain B {len(data.b)} images, shape {tuple(data.b.shape[1:])}")
        return
    classes = ", ".join(data.classes) if data.classes else "none (unlabelled)"
    typer.echo(f"{name} ({entry.splits[0]}): {len(data)} images, shape {tuple(data.images.shape[1:])}, "
               f"classes: {classes}")


DOWNLOADABLE = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}
# The public archives of Zhu et al. (CycleGAN: trainA/ trainB/ testA/ testB/, an `unpaired` dataset) and Isola et al.
# (Pix2Pix: train/ val/ test/ of A|B images, a `paired` dataset), as their download scripts fetch them.
CYCLEGAN = ("apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo", "ukiyoe2photo",
            "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower")
PIX2PIX = ("cityscapes", "night2day", "edges2handbags", "edges2shoes", "facades", "maps")
ARCHIVES = {**{name: f"https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip" for name in CYCLEGAN},
            **{f"pix2pix-{name}": f"https://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"
               for name in PIX2PIX}}


@app.command()
def download(
    name: str = typer.Argument(..., help=f"One of: {', '.join([*DOWNLOADABLE, *ARCHIVES])}."),
    data_root: Path | None = typer.Option(None, help="Data root (default: $BENCH_DATA or ./data)."),
) -> None:
    """Fetch a dataset into the data root (needs internet; training never downloads)."""

    root = data_root if data_root is not None else default_data_root()
    if name in ARCHIVES:
        _fetch_archive(name, ARCHIVES[name], root)
        return
    if name not in DOWNLOADABLE:
        raise BenchError(f"cannot download '{name}': downloadable datasets are "
                         f"{', '.join([*DOWNLOADABLE, *ARCHIVES])}")
    import torchvision

    source = getattr(torchvision.datasets, DOWNLOADABLE[name])
    try:
        for train in (True, False):
            source(str(root), train=train, download=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise BenchError(f"could not download '{name}' into {root} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'no detail'}); check the network, or copy "
                         "torchvision's files there by hand") from None
    typer.echo(f"downloaded {name} into {root}")


def _fetch_archive(name: str, url: str, root: Path) -> None:
    """Download and unpack a CycleGAN / Pix2Pix archive into <root>/<its folder>."""
    import shutil
    import tempfile
    import urllib.request

    folder = root / name.removeprefix("pix2pix-")
    kind = "paired" if name.startswith("pix2pix-") else "unpaired"
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            archive = Path(tmp) / url.rsplit("/", 1)[1]
            typer.echo(f"downloading {url}")
            with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as f:
                shutil.copyfileobj(response, f)
            shutil.unpack_archive(str(archive), tmp)
            unpacked = next(p for p in Path(tmp).iterdir() if p.is_dir())
            if folder.exists():
                shutil.rmtree(folder)
            shutil.move(str(unpacked), folder)
    except (OSError, shutil.ReadError, StopIteration) as err:
        raise BenchError(f"could not download '{name}' from {url} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'no detail'}); check the network, or unpack "
                         f"the archive into {folder} by hand") from None
    typer.echo(f"downloaded {name} into {folder}: use {{name: {kind}, path: {folder}}} in a suite")
