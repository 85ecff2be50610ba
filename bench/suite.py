"""Suites: YAML validated by pydantic, expanded into Trials with stable keys.

A Trial's key is a hash of the part of its config that decides its numbers (method and all its resolved
hyperparameters, dataset, seed, budget, resolution, batch size, evaluation protocol, numerics options).
Logging intervals, the device and the tracking URI are not part of it.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench import results
from bench.data import DATASETS
from bench.devices import DEVICE_PATTERN
from bench.errors import BenchError
from bench.methods import ADDED, METHODS, added, get_method, identity_dump, identity_params
from bench.numerics import DEFAULT_THREADS
from bench.space import method_space


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _set(model: BaseModel) -> dict[str, Any]:
    """A config block as MLflow params: a setting added after trials were recorded that is unset (None) is left
    out, so records and reports of earlier trials gain no empty column (eval.select_split)."""
    fields = type(model).model_fields
    return {k: v for k, v in model.model_dump().items()
            if not (v is None and fields[k].json_schema_extra == ADDED)}


class MethodSpec(Strict):
    name: str
    label: str | None = Field(None, description="name shown in reports; defaults to the method name")
    params: dict[str, Any] = Field(default_factory=dict, description="hyperparameter overrides")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="this method's own hyperparameter grid")
    datasets: list[str] | None = Field(None, description="restrict this method to these datasets (by name)")

    @field_validator("name")
    @classmethod
    def known_method(cls, name: str) -> str:
        if name not in METHODS:
            raise ValueError(f"unknown method '{name}'; known: {', '.join(sorted(METHODS))}")
        return name


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_compact(v)}" for k, v in sorted(value.items())) + "}"
    return f"{value:g}" if isinstance(value, float) else str(value)


class DatasetSpec(Strict):
    name: str
    split: str = "train"
    options: dict[str, Any] = Field(default_factory=dict, description="source settings, e.g. path for `folder`")

    @property
    def label(self) -> str:
        """What records and reports call it: the name, and whatever else decides its images, so that two entries of
        one source (two folders, all the digits and a subset of them) never share a report's row or cell:
        `digits`, `digits[subset=0.1]`, `folder[path=photos]`."""
        shown = {k: Path(str(v)).name if k == "path" else v for k, v in self.options.items()}  # a folder: its name
        parts = ([f"split={self.split}"] if self.split != "train" else []) + [
            f"{k}={_compact(v)}" for k, v in sorted(shown.items())]
        return f"{self.name}[{','.join(parts)}]" if parts else self.name

    @field_validator("name")
    @classmethod
    def known_dataset(cls, name: str) -> str:
        if name not in DATASETS:
            raise ValueError(f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))}")
        return name


class Budget(Strict):
    """Training length in generator steps, or in epochs (passes of the real data through the discriminator)."""

    steps: int | None = Field(None, gt=0)
    epochs: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def exactly_one(self):
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of steps or epochs, e.g. budget: {steps: 2000}")
        return self


class EvalSpec(Strict):
    every: int = Field(0, ge=0, description="evaluate every N generator steps (0: only at the end)")
    n_fake: int = Field(2048, gt=0, description="generated images per evaluation")
    n_real: int | None = Field(None, gt=0, description="reference images (default: the whole split)")
    reference_split: str = "train"
    select_split: str | None = added(None, description="the split whose FID picks a trial's best step (fid_best is "
                                                       "then the reference split's FID at that step), e.g. "
                                                       "validation with reference_split: test")
    metrics: list[str] = Field(default_factory=lambda: ["fid"], description="bench/results.py: fid, kid, prdc, "
                                                                         "is, authpct, intra_fid")
    mode: Literal["clean", "legacy_tensorflow"] = "clean"
    reference_stats: str | None = Field(None, description="precomputed statistics (.npz with mu, sigma) to "
                                                          "compare against instead of the dataset")
    inception_weights: str | None = Field(None, description="full Inception weights (with classifier) for the "
                                                            "Inception Score; a machine path, not identity")
    n_per_class: int = added(128, gt=1, description="generated images per class for intra_fid (conditional "
                                                   "methods: the FID of each class against its real images)")
    # Settings added after records existed: unset (None) they are neither part of a trial's key nor logged as
    # params, so earlier records, reports and keys stay as they were; `inception`, False and 0 mean unset.
    features: str | None = added(None, description="the feature space every metric measures in: inception (the "
                                                    "default), encoder:PATH (from `bench encoder train`) or "
                                                    "dinov2:PATH (DINOv2 weights, a local file); "
                                                    "bench/metrics/spaces.py")
    also_features: list[str] | None = added(None, description="further feature spaces, at most one of each kind "
                                                              "(e.g. [encoder:digits]): the same generated images' "
                                                              "FD in each, logged as fd_<kind>")
    features_own_weights: bool | None = added(None, description="dinov2:PATH holds weights that are not an "
                                                                "official DINOv2 checkpoint, and the records say so")
    bootstrap: int | None = added(None, ge=0, description="resamples of each evaluation's generated features (e.g. "
                                                         "1000) for the 95% intervals <key>_ci_low/_ci_high of fid, "
                                                         "kid, precision, density, coverage and authpct; 0: none "
                                                         "(bench/metrics/bootstrap.py)")

    @field_validator("features")
    @classmethod
    def _known_space(cls, value: str | None) -> str | None:
        if value is None:
            return None
        kind, _, path = value.partition(":")
        if kind not in ("inception", "encoder", "dinov2") or (kind == "inception") != (not path.strip()):
            raise ValueError(f"unknown feature space '{value}'; use inception, encoder:PATH or dinov2:PATH")
        return None if kind == "inception" else value

    @field_validator("also_features")
    @classmethod
    def _known_spaces(cls, value: list[str] | None) -> list[str] | None:
        kinds = [cls._known_space(text) or "inception" for text in value or ()]
        kinds = [k.partition(":")[0] for k in kinds]
        if len(set(kinds)) < len(kinds):
            raise ValueError(f"also_features {value}: at most one space of each kind (FD in it is fd_<kind>)")
        return value or None

    @field_validator("features_own_weights", "bootstrap")
    @classmethod
    def _unset_when_off(cls, value):
        return value or None

    @model_validator(mode="after")
    def _own_weights_of_dinov2(self):
        named = [self.features or "", *(self.also_features or ())]
        if self.features_own_weights and not any(t.startswith("dinov2:") for t in named):
            raise ValueError("features_own_weights is for a dinov2:PATH in features or also_features only")
        primary = (self.features or "inception").partition(":")[0]
        if any(t.partition(":")[0] == primary for t in self.also_features or ()):
            raise ValueError(f"also_features repeats the kind of features ({primary}): every metric is already "
                             "measured in that space")
        return self

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in results.selectable()]
        if unknown:
            raise ValueError(f"unknown metric '{unknown[0]}'; use some of: {', '.join(results.selectable())}")
        return value


class LogSpec(Strict):
    every: int = Field(50, gt=0, description="log mean losses every N generator steps")
    samples_every: int = Field(500, gt=0, description="save a sample grid every N steps (and at the end)")
    checkpoint_every: int = Field(200, gt=0, description="write a resumable checkpoint every N steps")
    heldout_scores: bool = added(False, description="at every log step, D's mean output on 256 training and 256 "
                                                    "held-out real images (validation split, else test): "
                                                    "d_real_train, d_real_heldout; the DCGAN family")


class ReportSpec(Strict):
    """How `bench report` compares methods; not part of a trial's identity."""

    test: Literal["mannwhitney", "welch"] = "mannwhitney"


class TuneSpec(Strict):
    """How `bench tune` searches (bench/tune); not part of a trial's identity. Spaces: bench/space.py."""

    space: dict[str, Any] = Field(default_factory=dict, description="distributions for every tuned method")
    spaces: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per method label")
    trials: int | None = Field(None, gt=0, description="finished or pruned trials per study")
    objective: str = Field(results.HEADLINE, description="bench/results.py: fid_final, fid_best, kid_final")
    pruner: Literal["median", "hyperband", "none"] = "median"
    startup_trials: int = Field(5, ge=0, description="trials the median pruner lets finish before it prunes")

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, value: str) -> str:
        if value not in results.objectives():
            raise ValueError(f"unknown objective '{value}'; use one of: {', '.join(results.objectives())}")
        return value


class Numerics(Strict):
    """What decides a trial's bits besides its config (bench/numerics.py); all of it is part of its identity."""

    portable: bool = Field(True, description="pinned CPU kernels: the same bits on any x86-64 machine with AVX2 "
                                             "(false: this machine's fastest, run with BENCH_NUMERICS=native)")
    threads: int = Field(DEFAULT_THREADS, ge=1, le=256, description="CPU threads a trial computes with (reductions "
                         "split by thread); trials running at once each take this many")
    deterministic: bool = Field(False, description="CUDA: deterministic algorithms, no cuDNN benchmark, TF32 off")
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False


MAX_SEED = 2**31 - 1
MAX_TRIALS = 10_000  # a trial is a whole training run: a suite beyond this is a typo, not a study


def folder_name(name: str) -> str:
    """A suite's name becomes a folder (runs/<suite>, reports/<suite>, mlartifacts/<suite>): one safe component."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise ValueError("must be one folder name (it becomes runs/<name> and reports/<name>): letters, digits, "
                         "'_', '-' and '.', but not '.' or '..' alone")
    return name


class Suite(Strict):
    name: str
    methods: list[MethodSpec] = Field(min_length=1)
    datasets: list[DatasetSpec] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="hyperparameter grid for every method")
    budget: Budget
    resolution: int = Field(32, gt=0)
    batch_size: int = Field(64, gt=0)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    log: LogSpec = Field(default_factory=LogSpec)
    numerics: Numerics = Field(default_factory=Numerics)
    report: ReportSpec = Field(default_factory=ReportSpec)
    tune: TuneSpec = Field(default_factory=TuneSpec)
    device: str = "auto"
    tracking_uri: str | None = None

    @field_validator("name")
    @classmethod
    def safe_name(cls, name: str) -> str:
        return folder_name(name)

    @field_validator("methods", mode="before")
    @classmethod
    def method_shorthand(cls, value):
        # `dcgan` or `{dcgan: {width: 32}}` or `{name: dcgan, params: {...}}`
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, str):
                item = {"name": item}
            elif isinstance(item, dict) and len(item) == 1 and "name" not in item:
                (name, params), = item.items()
                item = {"name": name, "params": params or {}}
            out.append(item)
        return out

    @field_validator("datasets", mode="before")
    @classmethod
    def dataset_shorthand(cls, value):
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            if isinstance(item, str):
                item = {"name": item}
            elif isinstance(item, dict) and "name" in item:
                known = {"name", "split", "options"}
                options = {k: v for k, v in item.items() if k not in known}
                item = {k: v for k, v in item.items() if k in known}
                if options:
                    item["options"] = {**item.get("options", {}), **options}
            out.append(item)
        return out

    @field_validator("seeds", mode="before")
    @classmethod
    def seed_count(cls, value):
        if isinstance(value, bool):
            raise ValueError("seeds is a count or a list of integers")
        if isinstance(value, int):
            if value < 1:
                raise ValueError("a seed count must be at least 1")
            if value > MAX_TRIALS:  # checked before the list is built: `seeds: 100000000` must not eat memory
                raise ValueError(f"{value} seeds: a suite holds at most {MAX_TRIALS:,} trials, each a full "
                                 "training run; use fewer seeds or split the study into several suites")
            return list(range(value))
        if isinstance(value, list) and len(value) > MAX_TRIALS:
            raise ValueError(f"{len(value)} seeds: a suite holds at most {MAX_TRIALS:,} trials")
        return value

    @field_validator("seeds")
    @classmethod
    def seeds_in_range(cls, seeds: list[int]) -> list[int]:
        for seed in seeds:
            if not 0 <= seed <= MAX_SEED:  # the range every RNG bench seeds (python, numpy, torch) accepts
                raise ValueError(f"seed {seed} is out of range; seeds are integers from 0 to {MAX_SEED}")
        return seeds

    @field_validator("device")
    @classmethod
    def known_device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"unknown device '{value}'; allowed: auto, cpu, cuda, cuda:N, mps")
        return value

    @model_validator(mode="after")
    def consistent(self):
        names = [d.name for d in self.datasets]
        shown = [d.label for d in self.datasets]
        if twice := sorted({label for label in shown if shown.count(label) > 1}):
            raise ValueError(f"datasets: two entries would both be recorded as '{twice[0]}' (a folder is named by its "
                             "last path component); rename one of the folders or drop the repeated entry")
        for i, m in enumerate(self.methods):
            for d in m.datasets or []:
                if d not in names:
                    raise ValueError(f"methods.{i}.datasets: '{d}' is not among the suite's datasets {names}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be distinct")
        labels = [m.label or m.name for m in self.methods]
        for i, label in enumerate(labels):
            if label in labels[:i]:  # two report rows with one name could not be told apart
                raise ValueError(f"methods.{i}: the label '{label}' is used twice; give one entry its own "
                                 "`label:` (e.g. label: {label}-small)".replace("{label}", label))
        return self


class Trial(BaseModel):
    """One training run: everything needed to reproduce it."""

    model_config = ConfigDict(frozen=True)

    suite: str
    method: str
    label: str
    params: dict[str, Any]  # the method's resolved hyperparameters
    dataset: DatasetSpec
    seed: int
    budget: Budget
    resolution: int
    batch_size: int
    eval: EvalSpec
    numerics: Numerics
    log: LogSpec
    device: str
    report: ReportSpec = ReportSpec()

    @field_validator("suite")
    @classmethod
    def safe_suite(cls, name: str) -> str:  # a config read back from a report or a store becomes runs/<suite> too
        return folder_name(name)

    def identity(self) -> dict[str, Any]:
        """The normalised config that decides the trial's numbers."""
        return {
            "method": self.method, "params": identity_params(self.method, self.params),
            "dataset": self.dataset.model_dump(),
            "seed": self.seed, "budget": self.budget.model_dump(), "resolution": self.resolution,
            "batch_size": self.batch_size, "eval": identity_dump(self.eval, exclude={"inception_weights"}),
            "numerics": self.numerics.model_dump(),
        }

    @property
    def key(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def hyper(self):
        return get_method(self.method).Hyper(**self.params)

    def flat(self) -> dict[str, Any]:
        """Flat name -> value view used by --only filters, MLflow params and report columns."""
        out = {"key": self.key, "suite": self.suite, "method": self.method, "label": self.label,
               "dataset": self.dataset.name, "seed": self.seed}
        out.update(flatten({"params": self.params, "budget": self.budget.model_dump(),
                             "dataset_options": self.dataset.options, "eval": _set(self.eval),
                             "numerics": self.numerics.model_dump()}))
        out.update({"resolution": self.resolution, "batch_size": self.batch_size, "split": self.dataset.split,
                    "report.test": self.report.test})
        return out


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


# loading ------------------------------------------------------------------------------------------------------

def load_suite(path: str | Path, overrides: list[str] = ()) -> Suite:
    """Read, override (`dotted.path=value`) and validate a suite; every problem is one BenchError line."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: suite file not found; see suites/ for examples (suites/quickstart.yaml)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise BenchError(f"{path}: not UTF-8 text (byte {err.start}: {err.object[err.start:err.start + 1]!r}); "
                         "save the suite as UTF-8") from None
    except OSError as err:
        raise BenchError(f"{path}: cannot read the suite ({err.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise BenchError(f"{path}:{where}: invalid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise BenchError(f"{path}: a suite is a mapping (name:, methods:, datasets:, ...), got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    return load_raw(raw, overrides, path)


def load_raw(raw: dict, overrides: list[str] = (), source: str | Path = "<suite>") -> Suite:
    """A suite from a mapping, with `--set` overrides, validated (what load_suite does after reading a file)."""
    raw = copy.deepcopy(raw)
    # Overrides address the canonical form (methods.0.params.width), whatever shorthand the file used.
    for key, canonical in (("methods", Suite.method_shorthand), ("datasets", Suite.dataset_shorthand)):
        if key in raw:
            raw[key] = canonical(raw[key])
    for item in overrides:
        _apply_override(raw, item, source)
    return validate_suite(raw, source)


def validate_suite(raw: dict, source: str | Path = "<suite>") -> Suite:
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as err:
        raise BenchError(f"{source}: {_describe(err, raw)}") from None
    count = trial_count(suite)
    if count > MAX_TRIALS:
        raise BenchError(f"{source}: the suite expands to {count:,} trials (methods x datasets x grid points x "
                         f"seeds); a suite holds at most {MAX_TRIALS:,}, each a full training run: shrink the grid "
                         "or the seeds, or split the study into several suites")
    _check_tune(suite, source)
    for i, m in enumerate(suite.methods):  # hyperparameters are checked against each method's own schema
        hyper = get_method(m.name).Hyper
        for where, names in ((f"methods.{i}.params", m.params), (f"methods.{i}.grid", m.grid), ("grid", suite.grid)):
            unknown = sorted(set(names) - set(hyper.model_fields))
            if unknown:
                raise BenchError(f"{source}: {where}: unknown hyperparameter '{unknown[0]}' for method '{m.name}'; "
                                 f"allowed: {', '.join(hyper.model_fields)}")
        for combo in _grid_points({**suite.grid, **m.grid}):
            try:
                hyper(**{**m.params, **combo})
            except ValidationError as err:
                raise BenchError(f"{source}: methods.{i}.params: {_describe(err, None)}") from None
    return suite


def _check_tune(suite: Suite, source) -> None:
    """The tune section's spaces against every method they would apply to (unknown names, empty ranges,
    distributions a parameter cannot take)."""
    labels = [m.label or m.name for m in suite.methods]
    for label in suite.tune.spaces:
        if label not in labels:
            raise BenchError(f"{source}: tune.spaces.{label}: not a method label of the suite; labels: "
                             f"{', '.join(labels)}")
    for m, label in zip(suite.methods, labels, strict=True):
        hyper = get_method(m.name).Hyper
        method_space(m.name, hyper, suite.tune.space, f"{source}: tune.space")
        method_space(m.name, hyper, {**suite.tune.space, **suite.tune.spaces.get(label, {})},
                     f"{source}: tune.spaces.{label}")


def _describe(err: ValidationError, raw: dict | None) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-after"))
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        parent = first["loc"][:-1]
        model = _model_at(parent, raw)
        allowed = f"; allowed: {', '.join(model.model_fields)}" if model else ""
        return f"{loc}: unknown key{allowed}"
    if first["type"] == "missing":
        return f"{loc}: required key is missing"
    value = first.get("input")
    shown = f" (got {value!r})" if value is not None and not isinstance(value, dict | list) else ""
    return f"{loc}: {msg}{shown}" if loc else msg


def _model_at(loc: tuple, raw) -> type[BaseModel] | None:
    model: Any = Suite
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        ann = field.annotation
        for candidate in (ann, *getattr(ann, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
        else:
            return None
    return model


def _apply_override(raw: dict, item: str, path: Path) -> None:
    if "=" not in item:
        raise BenchError(f"--set {item}: expected dotted.path=value, e.g. --set budget.steps=300")
    dotted, value_text = item.split("=", 1)
    try:
        value = yaml.safe_load(value_text) if value_text else None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise BenchError(f"--set {item}: the value is not valid YAML ({problem}); quote it, e.g. "
                         "--set 'eval.metrics=[fid, kid]'") from None
    node: Any = raw
    parts = dotted.split(".")
    if not all(parts):
        raise BenchError(f"--set {item}: empty part in the path '{dotted}'; e.g. --set budget.steps=300")
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise BenchError(f"--set {item}: '{part}' is not an index of the list at that path")
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        if not isinstance(node, dict | list):
            where = ".".join(parts[:depth + 1])
            raise BenchError(f"--set {item}: '{where}' is a plain value ({node!r}), not a mapping; "
                             f"set it directly, e.g. --set {where}=...")
    last = parts[-1]
    if parts[:-1] == ["budget"] and isinstance(node, dict):
        node.clear()  # a budget is steps or epochs: setting one replaces the other
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise BenchError(f"--set {item}: '{last}' is not an index of the list at that path")
        node[int(last)] = value
    else:
        node[last] = value


# expansion ----------------------------------------------------------------------------------------------------

def trial_count(suite: Suite) -> int:
    """How many trials `expand` would make, counted without making them."""
    total = 0
    for m in suite.methods:
        datasets = sum(m.datasets is None or d.name in m.datasets for d in suite.datasets)
        grid = {**suite.grid, **m.grid}
        total += datasets * math.prod(len(v) for v in grid.values()) * len(suite.seeds)
    return total


def _grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = sorted(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]


def make_trial(suite: Suite, method: MethodSpec, dataset: DatasetSpec, seed: int,
               point: dict[str, Any] | None = None) -> Trial:
    """The trial of a suite for one method, dataset and seed, with `point` overriding hyperparameters (a grid
    point, or a tuning proposal; `batch_size` there sets the trial's batch size)."""
    point = dict(point or {})
    batch_size = point.pop("batch_size", suite.batch_size)
    params = get_method(method.name).Hyper(**{**method.params, **point}).as_params()
    return Trial(suite=suite.name, method=method.name, label=method.label or method.name, params=params,
                 dataset=dataset, seed=seed, budget=suite.budget, resolution=suite.resolution, batch_size=batch_size,
                 eval=suite.eval, numerics=suite.numerics, log=suite.log, device=suite.device, report=suite.report)


def expand(suite: Suite) -> list[Trial]:
    """Every method x dataset x hyperparameter point x seed, in a stable order."""
    trials = []
    for m in suite.methods:
        for d in suite.datasets:
            if m.datasets is not None and d.name not in m.datasets:
                continue
            for point in _grid_points({**suite.grid, **m.grid}):
                for seed in suite.seeds:
                    trials.append(make_trial(suite, m, d, seed, point))
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        raise BenchError(f"suite '{suite.name}': two entries give the same trial; give them different params")
    return trials


def select(trials: list[Trial], only: list[str]) -> list[Trial]:
    """`--only key=value` filters: the same key repeated means any of those values; different keys all apply."""
    wanted: dict[str, set[str]] = {}
    for item in only:
        if "=" not in item:
            raise BenchError(f"--only {item}: expected key=value, e.g. --only method=dcgan --only seed=0")
        k, v = item.split("=", 1)
        wanted.setdefault(k.strip(), set()).add(v.strip())
    if not trials:
        return trials
    known = set(trials[0].flat())
    for k in wanted:
        if k not in known and not any(k in t.flat() for t in trials):
            raise BenchError(f"--only {k}=...: unknown key; use one of: {', '.join(sorted(known))}")
    return [t for t in trials if all(str(t.flat().get(k)) in vs for k, vs in wanted.items())]
