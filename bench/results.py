"""Every metric a trial can report, declared once: what one evaluation logs (its keys), which way is better, the
summaries a finished trial gets (final; best and its step), whether `bench tune` may optimise it, its title and
table in the report, and where its computation lives. Evaluation, a trial's finish line, tune's objectives, the
report and `bench reproduce` iterate over METRICS, so adding a metric is one entry here plus the function it names
(stylegan2-ada-pytorch's `metric_main.register_metric` is the model). docs/records.md is the contract of the
names.

A leaf: no torch, no numpy, so the suite's validation (below bench.metrics in the layers) reads it too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str  # what `eval.metrics` and `bench fid --metrics` call it
    keys: tuple[str, ...]  # what one evaluation logs (a metric that could not be computed logs none of them)
    title: str  # in tables and headings: "FID"
    final: tuple[str, ...] = ()  # keys whose value at the last evaluation is a summary: <key without _mean>_final
    best: bool = False  # the first final key is also summarised over training: <stem>_best, <stem>_best_step
    lower_is_better: bool = True
    objective: bool = False  # its summaries may be `tune.objective` (studies minimise: lower must be better)
    console: bool = False  # its final keys are in the line a finished trial prints
    table: str = ""  # the note of the report's table of its final value per cell (mean, CI, n); "" = no table
    section: str = ""  # that table's heading (default: the title)
    decimals: int = 2
    rows_without_values: bool = True  # False: rows with no value in any cell are left out of its table
    compute: str = ""  # "module:function" taking a bench.metrics.base.Scoring; "" = computed by its own path
    features: bool = False  # needs the reference's features, not only their mean and covariance
    pixels: bool = False  # needs the generated images as pixels, and the training and test splits (memorisation)
    task: str = "generation"  # or "translation" (image to image, per direction)
    selectable: bool = True  # a name `eval.metrics` accepts
    once: bool = False  # the same at every evaluation (baselines of the data): its keys are summaries themselves
    # with eval.bootstrap B > 0 (`bench fid --bootstrap B`): the keys whose spread over B resamples of the generated
    # images' features is logged as <key>_ci_low, <key>_ci_high (interval_keys), and the "module:function" taking a
    # Scoring and the resamples' counts that gives each key's B values (bench/metrics/bootstrap.py)
    intervals: tuple[str, ...] = ()
    bootstrap: str = ""

    @property
    def summaries(self) -> tuple[str, ...]:
        names = [summary_name(k) for k in self.final]
        if self.best:
            stem = summary_name(self.final[0]).removesuffix("_final")
            names[1:1] = [f"{stem}_best", f"{stem}_best_step"]
        return (*names, *(self.keys if self.once else ()))

    @property
    def interval_keys(self) -> tuple[str, ...]:
        return tuple(k for key in self.intervals for k in interval_keys(key))

    @property
    def better(self) -> str:
        return "lower is better" if self.lower_is_better else "higher is better"


def interval_keys(key: str) -> tuple[str, str]:
    """The keys of a value's bootstrap 95% interval over generated images (eval.bootstrap): low, high."""
    return f"{key}_ci_low", f"{key}_ci_high"


def summary_name(key: str) -> str:
    return f"{key.removesuffix('_mean')}_final"


_INTERVAL = "mean ± std over seeds, bootstrap 95% CI of the mean, n. Bold: {best} mean per dataset. Not tested."

METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name} registered twice")
    if metric.objective and not metric.lower_is_better:
        raise ValueError(f"metric {metric.name}: a tune objective must be lower-is-better (studies minimise)")
    if not set(metric.intervals) <= set(metric.keys) or bool(metric.intervals) != bool(metric.bootstrap):
        raise ValueError(f"metric {metric.name}: intervals must be some of its keys, with a bootstrap function")
    taken = {k for m in METRICS.values() for k in (*m.keys, *m.summaries, *m.interval_keys)}
    clash = taken & {*metric.keys, *metric.summaries, *metric.interval_keys}
    if clash:
        raise ValueError(f"metric {metric.name}: {sorted(clash)[0]} is another metric's name")
    METRICS[metric.name] = metric
    return metric


FID = register(Metric(
    "fid", ("fid",), "FID", final=("fid",), best=True, objective=True, console=True,
    compute="bench.metrics.evaluate:score_fid", intervals=("fid",), bootstrap="bench.metrics.bootstrap:fid"))
# the headline: the report's first table, the best row, the significance tests and the tuning tables
HEADLINE, BEST, BEST_STEP = FID.summaries
# with eval.select_split, the FID of the same samples against that split: it picks the best step, whose FID (against
# the reference split) is then fid_best; logged at every evaluation, summarised as fid_select_best
SELECTION = register(Metric("fid_select", ("fid_select",), "FID on the selection split", selectable=False))
SELECT = SELECTION.keys[0]
register(Metric(
    "kid", ("kid_mean", "kid_std"), "KID", final=("kid_mean",), objective=True, decimals=4, features=True,
    compute="bench.metrics.evaluate:score_kid", intervals=("kid_mean",), bootstrap="bench.metrics.bootstrap:kid",
    table="Final KID (kernel inception distance, unbiased, from the same Inception features as FID): "
          + _INTERVAL.format(best="lowest")))
register(Metric(
    "prdc", ("precision", "recall", "density", "coverage"), "precision/recall/density/coverage",
    lower_is_better=False, features=True, compute="bench.metrics.evaluate:score_prdc",
    # recall is left out: the generated set's own k-NN radii collapse on a resample's repeated images
    intervals=("precision", "density", "coverage"), bootstrap="bench.metrics.bootstrap:prdc"))
register(Metric(
    "is", ("is_mean", "is_std"), "Inception Score", lower_is_better=False,
    compute="bench.metrics.evaluate:score_inception"))
register(Metric(
    "authpct", ("authpct",), "AuthPct", final=("authpct",), lower_is_better=False, features=True, decimals=1,
    compute="bench.metrics.authenticity:score_authpct", intervals=("authpct",),
    bootstrap="bench.metrics.bootstrap:authpct", section="AuthPct: does a model return its training images?",
    table="AuthPct (Alaa et al. 2022, the dgm-eval / fls implementation): the share (%) of generated images "
          "farther from their nearest reference image than that image is from its own nearest reference "
          "neighbour, in Inception space; 100 = none sits closer to a training image than the training images "
          "sit to each other, low values point at copies. " + _INTERVAL.format(best="highest")))
register(Metric(
    "memorization", ("ct", "ct_pixel", "nn_ratio", "nn_ratio_pixel"), "data copying (C_T)",
    final=("ct", "ct_pixel", "nn_ratio", "nn_ratio_pixel"), lower_is_better=False, pixels=True,
    compute="bench.metrics.memorization:score_memorization", intervals=("ct", "ct_pixel"),
    bootstrap="bench.metrics.bootstrap:memorization", section="Memorisation: did a model copy its training set?",
    table="C_T (Meehan et al. 2020, bench/metrics/memorization.py) in Inception space: generated images against "
          "held-out ones (the test split), by their distance to the nearest training image within k-means cells; "
          "below -3 the generated images sit closer to the training set than new images do (copying), near 0 as "
          "close, far above 0 farther (underfitting, not quality). ct_pixel (the same in pixel space) and "
          "nn_ratio (median distance to the training set, generated / held-out) are in tables/tidy.csv; each "
          "trial's closest pairs are its memorization/closest.png. " + _INTERVAL.format(best="highest")))
register(Metric(
    "intra_fid", ("intra_fid",), "intra-FID", final=("intra_fid",), console=True, rows_without_values=False,
    section="Intra-FID: does a conditional model follow its labels?",
    table="Intra-FID (Miyato & Koyama 2018; StudioGAN's intra-class FID): for each class, the FID of images "
          "generated for that label against the real images of that class, averaged over the classes; mean "
          "± std over seeds, bootstrap 95% CI of the mean, n. It asks whether a conditional model follows its "
          "labels, which the FID of its unlabelled mix cannot tell. Conditional methods only (— for the "
          "others); per-class values are in tables/tidy.csv (intra_fid/<class>). Not tested."))
register(Metric(
    "leak", ("leak_cutout", "leak_cutout_real", "leak_rotation", "leak_rotation_real"), "augmentation leak",
    final=("leak_rotation", "leak_cutout"), lower_is_better=True, decimals=3,
    section="Augmentation leak: do samples show D's augmentations?",
    table="Augmentation leak (bench/metrics/leak.py): the share of generated images read as rotated by a quarter "
          "turn by an orientation classifier trained on real images (leak_rotation; real images score "
          "leak_rotation_real), at the last evaluation; leak_cutout (images with a DiffAugment-filled square) and "
          "the real images' shares are in tables/tidy.csv. " + _INTERVAL.format(best="lowest")))
# eval.also_features (`bench fid --also-features`): the same generated images measured again in further feature
# spaces, one per kind: FD (the Fréchet distance, FID's formula) in each, under the space's kind. Only FD: KID's
# cubic kernel (x.y/d + 1)^3 is scaled for Inception's features, and an encoder's larger ones make it noise. The
# spaces' files' sha256 are protocol entries eval.fd_<kind>.weights_sha256 (bench/metrics/evaluate.py).
ALSO_KINDS = ("inception", "encoder", "dinov2")
_SPACE_TITLES = {"inception": "Inception", "encoder": "the encoder's", "dinov2": "DINOv2's"}
ALSO = {kind: register(Metric(
    f"fd_{kind}", (f"fd_{kind}",), f"FD in {_SPACE_TITLES[kind]} space", final=(f"fd_{kind}",), selectable=False,
    section=f"A second feature space: FD in {_SPACE_TITLES[kind]} space",
    table=f"FD_{kind} (eval.also_features: {kind}{'' if kind == 'inception' else ':...'}): the Fréchet distance "
          "(FID's formula) of the same generated images as the FID table, against the same reference images, in "
          f"{_SPACE_TITLES[kind]} feature space; the protocol table names its weights' sha256 (eval.fd_{kind}.*). "
          "A ranking both spaces agree on does not hinge on ImageNet's features. "
          + _INTERVAL.format(best="lowest"))) for kind in ALSO_KINDS}
TRANSLATION_FID = register(Metric(
    "translation_fid", ("fid_a2b", "fid_b2a"), "FID per direction", final=("fid_a2b", "fid_b2a"), console=True,
    task="translation", selectable=False))
register(Metric("translation_kid", ("kid_a2b_mean", "kid_b2a_mean", "kid_a2b_std", "kid_b2a_std"),
                "KID per direction", final=("kid_a2b_mean", "kid_b2a_mean"), task="translation", selectable=False))
register(Metric("paired", ("l1_a2b", "psnr_a2b", "ssim_a2b"), "L1 / PSNR / SSIM of aligned pairs",
                final=("l1_a2b", "psnr_a2b", "ssim_a2b"), task="translation", selectable=False))
register(Metric("baselines", ("baseline_fid_a_vs_a", "baseline_fid_b_vs_b", "baseline_fid_a_vs_b"),
                "FID of the data alone", task="translation", selectable=False, once=True))


def selectable() -> list[str]:
    """The names `eval.metrics` accepts."""
    return [m.name for m in METRICS.values() if m.selectable]


def computed() -> list[Metric]:
    """The metrics of one feature space computed from a generated set and a reference, in evaluation order."""
    return [m for m in METRICS.values() if m.compute]


def summaries(evaluations: list[dict]) -> dict[str, float]:
    """A finished trial's summary values (fid_final, fid_best, fid_best_step, kid_final, ...) from its evaluations
    (one dict per evaluation step, with "step")."""
    if not evaluations:
        return {}
    last, out = evaluations[-1], {}
    for metric in METRICS.values():
        for key in metric.final:
            if key not in last:
                continue
            out[summary_name(key)] = last[key]
            if metric.best and key == metric.final[0]:
                stem = summary_name(key).removesuffix("_final")
                best = chosen_evaluation(evaluations, key, metric.lower_is_better)
                out.update({f"{stem}_best": best[key], f"{stem}_best_step": best["step"]})
        if metric.once:
            out.update({k: last[k] for k in metric.keys if k in last})
    return out


def best_evaluation(evaluations: list[dict], key: str, lower_is_better: bool = True) -> dict:
    """The evaluation with the best value of `key`; the earliest step among equals."""
    sign = 1 if lower_is_better else -1
    return min((e for e in evaluations if key in e), key=lambda e: (sign * e[key], e["step"]))


def chosen_evaluation(evaluations: list[dict], key: str, lower_is_better: bool = True) -> dict:
    """The evaluation whose `key` is a trial's best: chosen by fid_select where the trial logged it (the selection
    split picks the step, the reference split scores it), else by `key` itself."""
    logged = [e for e in evaluations if key in e]
    if key == FID.keys[0] and logged and all(SELECT in e for e in logged):
        return best_evaluation(logged, SELECT)
    return best_evaluation(logged, key, lower_is_better)


def console_keys() -> list[str]:
    return [k for m in METRICS.values() if m.console for k in m.final]


def objectives() -> dict[str, tuple[Metric, str]]:
    """`tune.objective` names -> (metric, the evaluation key it reads): fid_final, fid_best, kid_final."""
    out = {}
    for metric in METRICS.values():
        if metric.objective:
            key = metric.final[0]
            out.update({name: (metric, key) for name in metric.summaries if not name.endswith("_best_step")})
    return out


def objective_value(evaluations: list[dict], objective: str) -> float | None:
    """A study's objective from a trial's evaluations (None when it was not logged)."""
    metric, key = objectives()[objective]
    if objective.endswith("_best"):
        logged = [e for e in evaluations if key in e]
        return chosen_evaluation(logged, key, metric.lower_is_better)[key] if logged else None
    return (evaluations[-1] if evaluations else {}).get(key)


def objective_key(objective: str) -> str:
    """The evaluation key a pruner watches for `objective`."""
    return objectives()[objective][1]


def tabled() -> list[Metric]:
    """The metrics the report shows as a table of final values per cell with an interval: the headline (FID) and
    those with a `table` note; `bench reproduce --seeds` checks each of them."""
    return [m for m in METRICS.values() if m is FID or m.table]


def summary_columns() -> list[str]:
    """Every summary a trial can have, in the trials table's order."""
    return [name for m in METRICS.values() for name in m.summaries]


def column_order() -> list[str]:
    """The metric columns the tidy table puts first (the others follow by name): each step's values of the
    feature-space metrics, then their summaries."""
    first = computed()
    return ([k for m in first for k in (*m.keys, *m.interval_keys)] + [s for m in first for s in m.summaries])


def bootstrapped() -> list[Metric]:
    """The metrics with a bootstrap interval over generated images (eval.bootstrap)."""
    return [m for m in METRICS.values() if m.intervals]
