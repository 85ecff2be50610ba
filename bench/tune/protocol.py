"""What a study pins when it is created: the protocol its trials share, and the method's default configuration.

The protocol is everything in a bench trial's identity (its key) except what the study varies: the method (the
study's identity, checked apart), the searched parameters and the seed. Budget, data, resolution, batch size unless
searched, evaluation and numerics are in it. Stored in the study, it is what a resumed study is checked against (a
trial trained for 20 steps must never be ranked against one trained for 275) and what `--export` writes.
"""

from __future__ import annotations

import json
from typing import Any

from bench.errors import BenchError
from bench.space import TRIAL_LEVEL, Distribution
from bench.suite import Trial, flatten

PROTOCOL_ATTR = "bench.protocol"  # the flat protocol, a JSON object
SUITE_ATTR = "bench.suite"  # the suite the study was created from (tune section left out), for --export
SETTABLE = ("budget", "eval", "numerics", "resolution", "batch_size", "log")  # sections `--set` reaches directly


def protocol_of(trial: Trial, space: dict[str, Distribution]) -> dict[str, Any]:
    """The flat protocol (dotted name -> JSON value) of a study whose default trial is `trial`."""
    identity = {k: v for k, v in trial.identity().items() if k not in ("method", "seed")}
    flat = json.loads(json.dumps(flatten(identity), default=str))
    searched = {f"params.{name}" for name in space} | {name for name in space if name in TRIAL_LEVEL}
    return {k: v for k, v in flat.items() if k not in searched}


def default_point(trial: Trial, space: dict[str, Distribution]) -> tuple[dict[str, Any], list[str]]:
    """(the default trial's value of each searched parameter that its distribution can hold, the names left to the
    sampler because a choice does not list their default)."""
    point, sampled = {}, []
    for name, dist in sorted(space.items()):
        value = trial.batch_size if name == "batch_size" else trial.params.get(name)
        if value is None or (dist.kind == "choice" and value not in dist.values):
            sampled.append(name)
        else:
            point[name] = value
    return point, sampled


def check_resume(study: str, recorded: dict[str, Any], asked: dict[str, Any]) -> None:
    """One line when this command's protocol is not the study's: the first difference, and the way out."""
    differ = [k for k in sorted(set(recorded) | set(asked)) if recorded.get(k) != asked.get(k)]
    if not differ:
        return
    first = differ[0]
    more = f" (and {len(differ) - 1} more: {', '.join(differ[1:4])}{', ...' if len(differ) > 4 else ''})" \
        if len(differ) > 1 else ""
    sets = [f"--set {k}={_yaml(recorded[k])}" for k in differ
            if k.split(".")[0] in SETTABLE and recorded.get(k) is not None]
    way = (f"resume it with the study's settings ({' '.join(sets)})" if sets
           else "resume it with the suite it was created with")
    raise BenchError(f"study '{study}' was created with {first} {_shown(recorded.get(first))}, this command gives "
                     f"{_shown(asked.get(first))}{more}: a study's trials share one protocol; {way}, or start "
                     "another study with --study NEW")


def _shown(value: Any) -> str:
    return "unset" if value is None else _yaml(value)


def _yaml(value: Any) -> str:
    """A value as `--set` reads it back (YAML): lists and mappings in flow style, true/false, 3 for 3.0."""
    if isinstance(value, list | dict | bool):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
