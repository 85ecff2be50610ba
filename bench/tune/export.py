"""`bench tune ... --export FILE`: the best configuration of a study as a suite that re-trains it with several seeds,
so the winner is compared with confidence intervals by `bench run` + `bench report`, as Lucic et al. (2018) did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.errors import BenchError
from bench.suite import Suite, load_suite


def export_suite(base: Suite, label: str, method: str, dataset: dict, best: dict[str, Any], study: str,
                 value: float, objective: str, number: int, seeds: int, out: Path) -> Path:
    point = dict(best)
    batch_size = point.pop("batch_size", base.batch_size)
    spec = next((m for m in base.methods if (m.label or m.name) == label), None)
    params = {**(spec.params if spec else {}), **point}
    canonical = base.model_dump(mode="json", exclude={"tune"})
    canonical.update(name=f"{base.name}-{label}-tuned".replace("/", "-"), seeds=seeds, batch_size=batch_size,
                     datasets=[dataset], grid={},
                     methods=[{"name": method, "label": f"{label}-tuned", "params": params, "grid": {},
                               "datasets": None}])
    header = (f"# The best configuration of Optuna study '{study}' ({objective} {value:.4g} at trial #{number}),\n"
              f"# re-trained with {seeds} seeds: `bench run {out}` then `bench report --suite {canonical['name']}`.\n"
              "# Written by `bench tune --export`; the rest of the protocol is the tuned suite's.\n")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(header + yaml.safe_dump(canonical, sort_keys=False), encoding="utf-8")
    except OSError as err:
        raise BenchError(f"--export {out}: cannot write it ({err.strerror})") from None
    load_suite(out)  # what was written runs: validated like any suite
    return out
