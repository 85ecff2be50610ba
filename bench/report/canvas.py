"""What every report figure shares: seaborn's style on matplotlib's Agg canvas (no pyplot state), a palette per
method, PNGs written without metadata (byte-stable for the same records), and the Figure a report lists."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure

DPI = 100


@dataclass(frozen=True)
class Figure:
    file: str  # relative to the report folder: figures/<name>.png
    title: str
    caption: str


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-") or "x"


@contextmanager
def canvas(ncols: int, nrows: int, width: float, height: float, **kw):
    style = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.85),
             "svg.hashsalt": "bench", "axes.prop_cycle": matplotlib.cycler(color=sns.color_palette("tab10"))}
    with matplotlib.rc_context(style):
        fig = MplFigure(figsize=(width * ncols, height * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
        yield fig, axes


def save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata={"Software": None})


def palette_for(names: list[str]) -> dict[str, tuple]:
    colors = sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))
    return dict(zip(names, colors, strict=True))
