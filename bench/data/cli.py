"""`bench data ...`: build the datasets that are built, not downloaded (LEGO), and look inside any dataset.

Scrapy and the builder are imported inside the commands: `bench --help` should not pay for them.
"""

from __future__ import annotations

from pathlib import Path

import typer

from bench.errors import BenchError
from scrapers.settings import DEFAULT_BASE_URL, DEFAULT_IMAGE_BASE_URL, POLITE_DELAY_SECONDS

app = typer.Typer(help="Build and inspect datasets.", no_args_is_help=True)

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
    from bench.data import default_data_root
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
    from bench.data import DATASETS, default_data_root
    from bench.data.lego import LEGO_DATASETS, describe_lego

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
    classes = ", ".join(data.classes) if data.classes else "none (unlabelled)"
    typer.echo(f"{name} ({entry.splits[0]}): {len(data)} images, shape {tuple(data.images.shape[1:])}, "
               f"classes: {classes}")


DOWNLOADABLE = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


@app.command()
def download(
    name: str = typer.Argument(..., help=f"One of: {', '.join(DOWNLOADABLE)}."),
    data_root: Path | None = typer.Option(None, help="Data root (default: $BENCH_DATA or ./data)."),
) -> None:
    """Fetch a torchvision dataset into the data root (needs internet; training never downloads)."""
    if name not in DOWNLOADABLE:
        raise BenchError(f"cannot download '{name}': downloadable datasets are {', '.join(DOWNLOADABLE)}")
    import torchvision

    from bench.data import default_data_root

    root = data_root if data_root is not None else default_data_root()
    source = getattr(torchvision.datasets, DOWNLOADABLE[name])
    try:
        for train in (True, False):
            source(str(root), train=train, download=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise BenchError(f"could not download '{name}' into {root} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'no detail'}); check the network, or copy "
                         "torchvision's files there by hand") from None
    typer.echo(f"downloaded {name} into {root}")
