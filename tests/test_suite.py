"""Suite validation and expansion: counts, stable keys, grids, overrides and filters."""

import pytest

from bench.errors import BenchError
from bench.suite import expand, load_suite, select

BASE = """
name: s
methods: [dcgan, {wgan-gp: {width: 16}}]
datasets: [digits]
seeds: 3
resolution: 16
batch_size: 32
budget: {steps: 10}
"""


def test_expansion_counts_methods_datasets_grid_and_seeds(tiny_suite):
    body = BASE.replace("seeds: 3", "seeds: [0, 7]") + "grid: {lr_g: [0.0001, 0.0002]}\n"
    trials = expand(load_suite(tiny_suite(body)))
    assert len(trials) == 2 * 1 * 2 * 2
    assert {t.seed for t in trials} == {0, 7}
    assert {t.params["lr_g"] for t in trials} == {0.0001, 0.0002}
    assert len({t.key for t in trials}) == len(trials)


def test_keys_are_stable_across_loads_and_key_order(tiny_suite):
    first = [t.key for t in expand(load_suite(tiny_suite(BASE, "a.yaml")))]
    reordered = """
budget: {steps: 10}
batch_size: 32
resolution: 16
seeds: 3
datasets: [digits]
methods: [dcgan, {name: wgan-gp, params: {width: 16}}]
name: s
"""
    assert [t.key for t in expand(load_suite(tiny_suite(reordered, "b.yaml")))] == first
    assert [t.key for t in expand(load_suite(tiny_suite(BASE, "a.yaml")))] == first
    # stated defaults are the same trial as omitted ones
    explicit = BASE.replace("methods: [dcgan,", "methods: [{dcgan: {lr_g: 0.0002, critic_steps: 1}},")
    assert [t.key for t in expand(load_suite(tiny_suite(explicit, "c.yaml")))] == first


def test_key_changes_with_anything_that_changes_the_numbers(tiny_suite):
    base = {t.key for t in expand(load_suite(tiny_suite(BASE)))}
    for change in ("budget.steps=11", "batch_size=16", "eval.n_fake=100", "resolution=32"):
        assert not base & {t.key for t in expand(load_suite(tiny_suite(BASE), [change]))}, change
    # logging intervals and device do not change a trial's identity
    same = {t.key for t in expand(load_suite(tiny_suite(BASE), ["log.every=5", "device=cpu"]))}
    assert same == base


def test_set_overrides_by_dotted_path_and_is_validated(tiny_suite):
    suite = load_suite(tiny_suite(BASE), ["budget.steps=300", "methods.1.params.width=8"])
    assert suite.budget.steps == 300
    assert suite.methods[1].params == {"width": 8}
    with pytest.raises(BenchError, match="budget.steps"):
        load_suite(tiny_suite(BASE), ["budget.steps=-5"])


def test_setting_one_budget_unit_replaces_the_other(tiny_suite):
    suite = load_suite(tiny_suite(BASE.replace("budget: {steps: 10}", "budget: {epochs: 3}")), ["budget.steps=300"])
    assert (suite.budget.steps, suite.budget.epochs) == (300, None)


def test_only_selects_with_or_within_a_key_and_and_across_keys(tiny_suite):
    trials = expand(load_suite(tiny_suite(BASE)))
    assert {(t.method, t.seed) for t in select(trials, ["method=dcgan", "seed=0"])} == {("dcgan", 0)}
    assert len(select(trials, ["method=dcgan", "method=wgan-gp", "seed=1"])) == 2
    assert len(select(trials, ["params.width=16"])) == 3
    with pytest.raises(BenchError, match="unknown key"):
        select(trials, ["colour=red"])


def test_method_restricted_to_a_dataset(tiny_suite):
    body = BASE.replace("datasets: [digits]", "datasets: [digits, {name: folder, path: imgs}]").replace(
        "methods: [dcgan,", "methods: [{name: dcgan, datasets: [digits]},")
    trials = expand(load_suite(tiny_suite(body)))
    assert {t.dataset.name for t in trials if t.method == "dcgan"} == {"digits"}
    assert {t.dataset.name for t in trials if t.method == "wgan-gp"} == {"digits", "folder"}
    assert [t.dataset.options for t in trials if t.dataset.name == "folder"][0] == {"path": "imgs"}


def test_epoch_budget_converts_to_generator_steps(tiny_suite):
    from bench.train import total_steps

    trials = expand(load_suite(tiny_suite(BASE), ["budget={epochs: 2}"]))
    dcgan = next(t for t in trials if t.method == "dcgan")
    wgan_gp = next(t for t in trials if t.method == "wgan-gp")
    assert total_steps(dcgan, 1438) == 2 * (1438 // 32)
    assert total_steps(wgan_gp, 1438) == -(-2 * (1438 // 32) // 5)  # 5 critic steps per generator step


@pytest.mark.parametrize("body, message", [
    ("name: s\nmethods: [dcgan]\n", "datasets: required key is missing"),
    (BASE + "colour: red\n", "colour: unknown key; allowed: name, methods"),
    (BASE.replace("budget: {steps: 10}", "budget: {steps: 10, stesp: 3}"),
     "budget.stesp: unknown key; allowed: steps, epochs"),
    (BASE.replace("dcgan,", "dcgna,"), "unknown method 'dcgna'; known: acgan, biggan, biggan-mimicry, "
     "biggan-studiogan, cdcgan, cyclegan, dcgan, infogan, lsgan, pix2pix, sngan, sngan-mimicry, sngan-studiogan, "
     "stylegan, vanilla, wgan, wgan-gp, wgan-gp-acgan"),
    (BASE.replace("[digits]", "[digitz]"), "unknown dataset 'digitz'; known:"),
    (BASE.replace("steps: 10", "steps: -10"), "budget.steps: Input should be greater than 0 (got -10)"),
    (BASE.replace("steps: 10", "steps: ten"), "budget.steps: Input should be a valid integer"),
    (BASE.replace("seeds: 3", "seeds: []"), "seeds: List should have at least 1 item"),
    (BASE + "device: tpu\n", "unknown device 'tpu'; allowed: auto, cpu, cuda, cuda:N"),
    (BASE.replace("{width: 16}", "{widht: 16}"),
     "unknown hyperparameter 'widht' for method 'wgan-gp'; allowed: latent_dim"),
    (BASE.replace("{width: 16}", "{width: -1}"), "methods.1.params: width: Input should be greater than 0"),
])
def test_bad_suites_give_one_line_naming_file_key_and_what_is_allowed(tiny_suite, body, message):
    path = tiny_suite(body)
    with pytest.raises(BenchError) as err:
        load_suite(path)
    text = str(err.value)
    assert message in text
    assert text.startswith(str(path))
    assert "\n" not in text


def test_two_entries_of_one_source_are_told_apart_in_the_records(tiny_suite):
    """All the digits and a tenth of them, two folders: the records (and so the report's rows and cells) name each
    entry with what decides its images, never only by the source's name."""
    from bench.runs import RunOptions
    from bench.trial import _trial_tags

    path = tiny_suite("""
name: two
methods: [dcgan]
datasets: [digits, {name: digits, subset: 0.1}, {name: folder, path: a}, {name: folder, path: b, holdout: {test: 0.2}}]
seeds: 1
budget: {steps: 2}
""")
    labels = [t.dataset.label for t in expand(load_suite(path))]
    assert labels == ["digits", "digits[subset=0.1]", "folder[path=a]", "folder[holdout={test:0.2},path=b]"]
    trial = expand(load_suite(path))[1]
    assert _trial_tags(trial, RunOptions())["bench.dataset"] == "digits[subset=0.1]"
    same = tiny_suite("""
name: same
methods: [dcgan]
datasets: [{name: folder, path: x/photos}, {name: folder, path: y/photos}]
seeds: 1
budget: {steps: 2}
""", name="same.yaml")
    with pytest.raises(BenchError, match=r"both be recorded as 'folder\[path=photos\]'"):
        load_suite(same)
