"""Figures (seaborn on matplotlib's Agg canvas, no pyplot state): loss curves, FID vs step, final FID per
seed, sample grids side by side, and the tuning-budget plot. Each function writes one PNG without metadata
(byte-stable for the same records) and returns the caption that states what is drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from bench.report.canvas import Figure, canvas, palette_for, save, slug
from bench.report.records import is_translation, loss_order
from bench.results import HEADLINE

# What each loss name a method returns means, for the legends (an unknown name is shown as it is).
LOSS_NAMES = {"loss_d": "discriminator / critic", "loss_g": "generator", "loss_class": "D's class loss (real)",
              "loss_info": "mutual information (InfoGAN)", "loss_gp": "gradient penalty", "loss_r1": "R1 penalty"}


def smoothing_window(points_per_run: int) -> int:
    """Rolling-mean width in logged values: none for short runs, ~4% of the run for long ones."""
    return max(1, points_per_run // 25)


def loss_curves(curves: pd.DataFrame, trials: pd.DataFrame, dataset: str, out: Path) -> Figure:
    """One panel per method: every loss it logged vs step, mean over finished seeds, band = min-max over seeds."""

    rows = trials.set_index("run_id")["row"]
    data = curves[(curves["dataset"] == dataset) & curves["study"].isna()].copy()
    data["row"] = data["run_id"].map(rows)
    names = sorted(data["row"].unique())
    losses = [c for c in loss_order(data.columns) if data[c].notna().any()]
    shown = {loss: LOSS_NAMES.get(loss, loss) for loss in losses}
    colors = dict(zip(shown.values(), sns.color_palette("tab10", max(len(shown), 1)), strict=False))
    points = int(data.groupby("run_id")["step"].count().max()) if len(data) else 1
    window = smoothing_window(points)
    smooth = data.sort_values(["run_id", "step"], kind="stable")
    for loss in losses:
        smooth[loss] = smooth.groupby("run_id")[loss].transform(
            lambda s: s.rolling(window, min_periods=1).mean())
    long = smooth.melt(id_vars=["row", "run_id", "seed", "status", "step"], value_vars=losses,
                       var_name="loss", value_name="value").dropna(subset=["value"])
    long["loss"] = long["loss"].map(shown)
    ncols = min(3, max(1, len(names)))
    nrows = max(1, -(-len(names) // ncols))
    file = f"figures/losses_{slug(dataset)}.png"
    with canvas(ncols, nrows, 4.2, 3.0) as (fig, axes):
        for ax, name in zip(axes.flat, names, strict=False):
            part = long[long["row"] == name]
            order = [label for label in shown.values() if (part["loss"] == label).any()]
            finished = part[part["status"] == "finished"]
            if len(finished):
                sns.lineplot(finished, x="step", y="value", hue="loss", hue_order=order, palette=colors,
                             estimator="mean", errorbar=("pi", 100), ax=ax)
                ax.legend(title=None, fontsize=7)
            for _, run in part[part["status"] != "finished"].groupby("run_id", sort=True):
                for label in order:
                    line = run[run["loss"] == label]
                    ax.plot(line["step"], line["value"], color=colors[label], linestyle=":", linewidth=1)
            failed = part.loc[part["status"] != "finished", "run_id"].nunique()
            ax.set_title(name + (f" ({failed} failed/incomplete: dotted)" if failed else ""), fontsize=9)
            ax.set_xlabel("generator step")
            ax.set_ylabel("loss")
        for ax in axes.flat[len(names):]:
            ax.set_visible(False)
        fig.suptitle(f"Training losses on {dataset}")
        save(fig, out / file)
    smoothing = "no smoothing" if window == 1 else f"a trailing rolling mean over {window} logged values"
    caption = (f"Losses vs generator step on {dataset}, one panel per method, each loss the method returns "
               f"(discriminator and generator, and its own terms: class, information, penalties). Each logged "
               f"value is already the mean over its logging window (log.every steps); drawn with {smoothing}. "
               "Line: mean over finished seeds; band: min-max over seeds. Dotted: failed or incomplete trials, "
               "one line each. Scales differ between objectives (a WGAN critic loss is not a cross-entropy), so "
               "panels do not share a y axis.")
    return Figure(file, f"Losses on {dataset}", caption)


def fid_vs_step(tidy: pd.DataFrame, trials: pd.DataFrame, out: Path) -> Figure:
    rows = trials.set_index("run_id")["row"]
    data = tidy[tidy["study"].isna() & tidy["fid"].notna()].copy() if "fid" in tidy else tidy.iloc[:0].copy()
    data["row"] = data["run_id"].map(rows)
    datasets = sorted(trials.loc[trials["study"].isna(), "dataset"].unique())
    names = sorted(data["row"].unique())
    palette = palette_for(names)
    file = "figures/fid_vs_step.png"
    with canvas(min(2, max(1, len(datasets))), max(1, -(-len(datasets) // 2)), 5.5, 3.8) as (fig, axes):
        for ax, dataset in zip(axes.flat, datasets, strict=False):
            part = data[data["dataset"] == dataset]
            if len(part):
                sns.lineplot(part, x="step", y="fid", hue="row", hue_order=[n for n in names if n in
                             set(part["row"])], palette=palette, estimator="mean", errorbar=("pi", 100),
                             marker="o", ax=ax)
                ax.legend(title=None, fontsize=8)
            else:
                ax.text(0.5, 0.5, "no FID logged", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(dataset)
            ax.set_xlabel("generator step")
            ax.set_ylabel("FID (lower is better)")
        for ax in axes.flat[len(datasets):]:
            ax.set_visible(False)
        save(fig, out / file)
    caption = ("FID at each evaluation step: mean over seeds (line, markers), band = min-max over seeds. "
               "Failed trials contribute the evaluations they reached.")
    return Figure(file, "FID vs step", caption)


def ada_curves(curves: pd.DataFrame, trials: pd.DataFrame, dataset: str, out: Path) -> Figure:
    """ADA's augmentation probability p vs step, one line per trial, coloured by method."""
    rows = trials.set_index("run_id")["row"]
    data = curves[(curves["dataset"] == dataset) & curves["study"].isna() & curves["ada_p"].notna()].copy()
    data["row"] = data["run_id"].map(rows)
    names = sorted(data["row"].unique())
    file = f"figures/ada_p_{slug(dataset)}.png"
    with canvas(1, 1, 6.0, 3.4) as (fig, axes):
        ax = axes.flat[0]
        sns.lineplot(data, x="step", y="ada_p", hue="row", hue_order=names, palette=palette_for(names),
                     units="run_id", estimator=None, ax=ax)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("generator step")
        ax.set_ylabel("ADA's p")
        ax.legend(title=None, fontsize=7)
        fig.suptitle(f"ADA's augmentation probability on {dataset}")
        save(fig, out / file)
    caption = (f"p(t) of every trial with augment: ada on {dataset}, one line per seed: the probability with which "
               "each op of ADA's pipeline is applied to each image D sees. It rises while D's outputs on real "
               "images sit above the target (r_t, logged as ada_rt) and falls below it; p near 1 means D overfits "
               "whatever the augmentation, and augmentations may leak into the samples.")
    return Figure(file, f"ADA's p on {dataset}", caption)


def fid_per_seed(trials: pd.DataFrame, summary: pd.DataFrame, out: Path) -> Figure:
    """Final FID of every finished seed (points) over a box per method; counts under each method's name."""
    data = trials[trials["study"].isna() & (trials["outcome"] == "finished") & trials[HEADLINE].notna()]
    datasets = sorted(summary["dataset"].unique())
    names = sorted(summary["row"].unique())
    palette = palette_for(names)
    width = max(5.0, 1.2 * len(names))
    file = f"figures/{HEADLINE}_per_seed.png"
    with canvas(1, max(1, len(datasets)), width, 3.6) as (fig, axes):
        for ax, dataset in zip(axes.flat, datasets, strict=False):
            part = data[data["dataset"] == dataset]
            order = [n for n in names if ((summary["row"] == n) & (summary["dataset"] == dataset)).any()]
            if len(part):
                sns.boxplot(part, x="row", y=HEADLINE, order=order, hue="row", hue_order=order,
                            palette=palette, fill=False, showfliers=False, ax=ax, legend=False)
                sns.swarmplot(part, x="row", y=HEADLINE, order=order, hue="row", hue_order=order,
                              palette=palette, size=6, ax=ax, legend=False)
            counts = summary[summary["dataset"] == dataset].set_index("row")
            labels = []
            for name in order:
                c = counts.loc[name]
                extra = "".join(f", {c[k]} {w}" for k, w in (("n_failed", "failed"),
                                                              ("n_incomplete", "incomplete"),
                                                              ("n_missing", "missing")) if c[k])
                labels.append(f"{name}\nn={c['n']}{extra}")
            ax.set_xticks(range(len(order)), labels, fontsize=8)
            ax.set_xlim(-0.5, len(order) - 0.5)
            ax.set_title(dataset)
            ax.set_xlabel("")
            ax.set_ylabel("final FID")
        save(fig, out / file)
    caption = ("Final FID of each training seed (one point per seed) with its box per method. Under each "
               "name: n finished seeds with a value, and the trials left out (failed, incomplete, metric "
               "missing).")
    return Figure(file, "Final FID per seed", caption)


def _artifact_grids(trials: pd.DataFrame, dataset: str, fetch: Callable[[str, str], Path | None], artifact: str,
                    file: str, out: Path, width: float = 2.8, height: float = 3.0) -> pd.DataFrame:
    """One artifact image per method side by side (its lowest finished seed) into `file`; the trials shown."""
    part = trials[(trials["dataset"] == dataset) & trials["study"].isna() & (trials["outcome"] == "finished")]
    shown = []
    for name in sorted(part["row"].unique()):
        run = part[part["row"] == name].sort_values(["seed", "run_id"], kind="stable").iloc[0]
        path = fetch(run["run_id"], artifact)
        image = np.asarray(Image.open(path).convert("RGB")) if path else None
        shown.append((name, run["seed"], image))
    ncols = min(5, max(1, len(shown)))
    nrows = max(1, -(-len(shown) // ncols))
    with canvas(ncols, nrows, width, height) as (fig, axes):
        for ax, (name, seed, image) in zip(axes.flat, shown, strict=False):
            if image is None:
                ax.text(0.5, 0.5, f"no {artifact}", ha="center", va="center", transform=ax.transAxes)
            else:
                ax.imshow(image, interpolation="nearest")
            ax.set_title(f"{name}\nseed {seed}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        for ax in axes.flat[len(shown):]:
            ax.set_visible(False)
        save(fig, out / file)
    return part


def sample_grids(trials: pd.DataFrame, dataset: str, fetch: Callable[[str, str], Path | None],
                 out: Path) -> Figure:
    """samples/final.png of each method side by side (its lowest finished seed); training draws every grid of
    a (suite, dataset) from the same latent batch, so the grids compare by eye."""
    file = f"figures/samples_{slug(dataset)}.png"
    part = _artifact_grids(trials, dataset, fetch, "samples/final.png", file, out)
    caption = (f"Final samples on {dataset}, one grid per method (from its lowest finished seed). Every grid "
               f"comes from the same latent batch, fixed per (suite, dataset), so the grids compare by eye. "
               "Conditional methods show one row per class (the same 8 latents in every row: a row differs from "
               "the next only by its label); InfoGAN one row per value of its categorical code.")
    if len(part) and is_translation(part).all():
        caption = (f"Final translations on {dataset}, one grid per method (from its lowest finished seed), of the "
                   "same fixed test inputs, so the grids compare by eye: CycleGAN rows are input, translation, "
                   "reconstruction for A→B, then the same for B→A; Pix2Pix rows are input, output, target.")
    return Figure(file, f"Samples on {dataset}", caption)


def closest_pairs(trials: pd.DataFrame, dataset: str, fetch: Callable[[str, str], Path | None],
                  out: Path) -> Figure:
    """memorization/closest.png of each method (its lowest finished seed): the generated images nearest to a
    training image, above those training images."""
    file = f"figures/memorization_{slug(dataset)}.png"
    _artifact_grids(trials, dataset, fetch, "memorization/closest.png", file, out, width=4.0, height=1.6)
    return Figure(file, f"Closest to the training set on {dataset}",
                  f"For each method (its lowest finished seed, last evaluation): the 8 generated images nearest to a "
                  f"training image on {dataset} (top row) above those training images (bottom row), in the space "
                  "whose C_T is lower (Inception or pixels), at 32x32. Copies look like their partners; new "
                  "images only resemble them.")


def budget_plot(budget: pd.DataFrame, out: Path) -> Figure:
    """Lucic et al. (2018): minimum final FID found vs the number of tuning trials."""
    datasets = sorted(budget["dataset"].unique())
    groups = sorted({(s, label) for s, label in zip(budget["study"], budget["label"], strict=True)})
    palette = palette_for([f"{label} ({study})" for study, label in groups])
    file = "figures/budget.png"
    finite_values = budget[["median_min_fid", "low", "high", "observed_min_fid"]].to_numpy(dtype=float)
    finite_values = finite_values[np.isfinite(finite_values)]
    low_end, high_end = (finite_values.min(), finite_values.max()) if finite_values.size else (0.0, 1.0)
    top = high_end + 0.05 * max(high_end - low_end, 1.0)  # where a band that reaches a failed trial ends
    with canvas(min(2, len(datasets)), -(-len(datasets) // 2), 5.5, 3.8) as (fig, axes):
        for ax, dataset in zip(axes.flat, datasets, strict=False):
            for study, label in groups:
                part = budget[(budget["dataset"] == dataset) & (budget["study"] == study)
                              & (budget["label"] == label)]
                if part.empty:
                    continue
                name = f"{label} ({study})"
                clipped = part.replace([np.inf], top)
                ax.fill_between(clipped["k"], clipped["low"], clipped["high"], color=palette[name], alpha=0.2,
                                linewidth=0)
                ax.plot(clipped["k"], clipped["median_min_fid"], color=palette[name], label=name)
                ax.plot(clipped["k"], clipped["observed_min_fid"], color=palette[name], linestyle="--",
                        linewidth=1)
            ax.set_ylim(low_end - 0.05 * max(high_end - low_end, 1.0), top)
            ax.set_title(dataset)
            ax.set_xlabel("number of tuning trials (budget)")
            ax.set_ylabel("minimum final FID found")
            ax.legend(fontsize=8)
        for ax in axes.flat[len(datasets):]:
            ax.set_visible(False)
        save(fig, out / file)
    caption = ("Minimum final FID found vs number of hyperparameter trials (after Lucic et al. 2018). Solid: "
               "median, band: 95% interval of the minimum over k trials resampled with replacement (the "
               "bootstrap distribution, computed exactly); dashed: the minimum actually found over the first "
               "k trials in search order. Failed trials count as spent budget with no result; where the band "
               "or a line reaches one, it runs to the top edge.")
    return Figure(file, "Tuning budget", caption)
