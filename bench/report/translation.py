"""The report's translation section: FID per direction over seeds, between the baselines of the data alone
(report 004's figure 6: real against real, and the untranslated source against the target), and L1 / PSNR / SSIM
for aligned pairs. Translation trials are those whose run recorded bench.task = translation; a method's directions are
those any of its trials logged a value for (pix2pix: a2b only)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import display as D
from bench.report import tables
from bench.report.canvas import Figure, canvas, palette_for, save

ARROWS = {"a2b": "A→B", "b2a": "B→A"}
PAIRED = ("l1", "psnr", "ssim")


def directions(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per translation trial and direction: column `dataset` is '<dataset> A→B', `fid` and `kid` the final
    values, `floor` / `nothing` the baselines for that direction (the target's two halves; A against B)."""
    rows = []
    logged = {method: [d for d in ARROWS if f"fid_{d}_final" in group and group[f"fid_{d}_final"].notna().any()]
              for method, group in trials.groupby("method")}
    for _, trial in trials.drop(columns="task", errors="ignore").iterrows():
        for direction in logged.get(trial["method"]) or ("a2b",):
            target = direction[-1]
            entry = {**trial.to_dict(), "dataset": f"{trial['dataset']} {ARROWS[direction]}", "direction": direction,
                     "fid": trial.get(f"fid_{direction}_final"), "kid": trial.get(f"kid_{direction}_final"),
                     "floor": trial.get(f"baseline_fid_{target}_vs_{target}"),
                     "nothing": trial.get("baseline_fid_a_vs_b")}
            for name in PAIRED:
                entry[name] = trial.get(f"{name}_{direction}_final")
            rows.append(entry)
    return pd.DataFrame(rows)


def section(translation: pd.DataFrame, out: Path, with_figures: bool) -> tuple[dict[str, D.Display], list[Figure],
                                                                                dict[str, pd.DataFrame]]:
    """Displays, figures and CSV tables of the translation trials."""
    long = directions(translation)
    fid = _above_untranslated(tables.cell_summaries(long, "fid"), long)
    grid = D.metric_grid(fid, "translation_fid_table", "FID per direction (lower is better)", [
        "Translation FID (the CycleGAN / CUT protocol): the translations of the source domain's test images "
        "against the target domain's real test images; mean ± std over seeds, bootstrap 95% CI, n. Compare a "
        "cell with the baselines below, computed from the same test images: no model should beat real against "
        "real, and a model above 'untranslated' does worse than doing nothing: such a cell says so and is never "
        "marked best."])
    above = {(r.dataset, r.row) for r in fid.itertuples() if r.above_untranslated}
    for cells in grid.rows:
        for i, dataset in enumerate(grid.header[1:], 1):
            if (dataset, cells[0].lines[0]) in above:
                cells[i] = D.Cell((*cells[i].lines, "above untranslated: worse than doing nothing"), bold=False)
    displays = {"translation": grid}
    baselines = _baselines(long)
    displays["baselines"] = baselines
    csv = {"translation_fid": fid, "translation_trials": long}
    paired = long[long[list(PAIRED)].notna().any(axis=1)] if len(long) else long
    if len(paired):
        summaries = {name: tables.cell_summaries(paired, name) for name in PAIRED}
        displays["paired"] = _paired_display(summaries)
        csv.update({f"translation_{name}": table for name, table in summaries.items()})
    figures = [translation_plot(long, out)] if with_figures and len(long) else []
    return displays, figures, csv


def _above_untranslated(fid: pd.DataFrame, long: pd.DataFrame) -> pd.DataFrame:
    """`above_untranslated`: the cell's mean FID is not below its direction's untranslated baseline (doing nothing);
    such a cell is not the best of its column, whatever the other methods did."""
    nothing = long.groupby("dataset")["nothing"].mean() if len(long) else pd.Series(dtype=float)
    fid = fid.copy()
    fid["above_untranslated"] = [bool(n > 0 and mean >= nothing.get(d, math.inf))
                                 for n, mean, d in zip(fid["n"], fid["mean"], fid["dataset"], strict=True)]
    fid.loc[fid["above_untranslated"], "best"] = False
    return fid


def _baselines(long: pd.DataFrame) -> D.Display:
    columns = sorted(long["dataset"].unique()) if len(long) else []
    rows = []
    for name, key, meaning in (("real vs real (target's two halves)", "floor", "roughly the best reachable"),
                               ("untranslated source vs target", "nothing", "the score of doing nothing")):
        cells = [D.Cell.of(name, meaning)]
        for column in columns:
            values = long.loc[long["dataset"] == column, key].dropna()
            cells.append(D.Cell.of(D.number(float(values.mean())) if len(values) else D.MISSING))
        rows.append(cells)
    return D.Display("translation_baselines", "Baselines of the data alone", ["baseline", *columns], rows, [
        "From the cached Inception features of each domain's test images (report 004's figure 6): the FID "
        "between two seeded halves of the target domain, and between the whole source and target domains. "
        "Both depend on the number of test images, as every FID does."])


def _paired_display(summaries: dict[str, pd.DataFrame]) -> D.Display:
    header = ["method", "direction", "L1 (lower is better)", "PSNR dB (higher)", "SSIM (higher)"]
    keys = sorted({(r.row, r.dataset) for t in summaries.values() for r in t.itertuples()})
    rows = []
    for row, column in keys:
        cells = [D.Cell.of(row), D.Cell.of(column)]
        for name in PAIRED:
            match = summaries[name][(summaries[name]["row"] == row) & (summaries[name]["dataset"] == column)]
            s = match.iloc[0] if len(match) else None
            if s is None or s["n"] == 0:
                cells.append(D.Cell.of(D.MISSING))
            else:
                spread = "" if s["n"] < 2 else f" ± {D.number(s['std'], 3)}"
                cells.append(D.Cell.of(f"{D.number(s['mean'], 3)}{spread}", f"n={s['n']}"))
        rows.append(cells)
    return D.Display("translation_paired", "Aligned pairs: distance to the ground truth", header, rows, [
        "For paired data only, on images scaled to [0, 1]: L1 = mean absolute difference; PSNR = 10 log10(1 / "
        "MSE) per image; SSIM = Wang et al. 2004, 11x11 Gaussian window (sigma 1.5), per channel. Mean ± std "
        "over seeds. Pix2Pix optimises L1 directly; CycleGAN never sees the pairs."])


def translation_plot(long: pd.DataFrame, out: Path) -> Figure:
    """Per dataset and direction: each seed's FID per method, between the two baseline lines."""
    columns = sorted(long["dataset"].unique())
    names = sorted(long["row"].unique())
    palette = palette_for(names)
    file = "figures/translation_fid.png"
    with canvas(min(3, len(columns)), -(-len(columns) // 3), 4.0, 3.4) as (fig, axes):
        for ax, column in zip(axes.flat, columns, strict=False):
            part = long[(long["dataset"] == column) & long["fid"].notna()]
            order = [n for n in names if (part["row"] == n).any()]
            for x, name in enumerate(order):
                values = part.loc[part["row"] == name, "fid"].to_numpy(dtype=float)
                ax.scatter(np.full(len(values), x), values, color=palette[name], zorder=3)
                ax.plot([x - 0.25, x + 0.25], [values.mean()] * 2, color=palette[name], linewidth=2)
            for key, style, label in (("floor", "--", "real vs real"), ("nothing", ":", "untranslated")):
                value = long.loc[long["dataset"] == column, key].dropna()
                if len(value) and not math.isnan(float(value.mean())):
                    ax.axhline(float(value.mean()), color="grey", linestyle=style, linewidth=1, label=label)
            ax.set_xticks(range(len(order)), order, fontsize=8, rotation=20)
            ax.set_xlim(-0.6, max(len(order) - 0.4, 0.6))
            ax.set_title(column, fontsize=9)
            ax.set_ylabel("FID (lower is better)")
            ax.legend(fontsize=7)
        for ax in axes.flat[len(columns):]:
            ax.set_visible(False)
        save(fig, out / file)
    caption = ("Translation FID of each seed (points; bar: mean), per dataset and direction, between the baselines "
               "of the data alone: dashed, real against real (the target domain's two halves); dotted, the "
               "untranslated source against the target.")
    return Figure(file, "Translation FID between its baselines", caption)
