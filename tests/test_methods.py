"""Every method trains a few steps at two resolutions and both channel counts, with finite losses; the parts methods
are made of (objectives, penalties, conditioning, codes, style mixing) against hand computations."""

import math
import sys

import pytest
import torch

from bench.data import PairSet
from bench.errors import BenchError
from bench.methods import METHODS, DataShape, get_method, identity_params, register_method
from bench.methods.penalties import gradient_penalty, r1_penalty
from bench.suite import Budget, DatasetSpec, EvalSpec, LogSpec, Numerics, Trial
from bench.train import Trainer
from tests.support import RecordingTracker, logged_losses, make_trial, random_data

CPU = torch.device("cpu")


def build(method: str, resolution: int = 16, channels: int = 1, n_classes: int = 4, **params):
    cls = get_method(method)
    weights = torch.ones(n_classes, dtype=torch.float64) if n_classes else None
    instance = cls(cls.Hyper(width=8, **params), DataShape(channels, resolution, n_classes, weights))
    instance.setup(CPU)
    return instance


# translation: its own tests; BigGAN's optimiser presets train its networks as `biggan` does (tests/test_resnet.py)
GENERATORS = sorted(name for name, cls in METHODS.items() if cls.task == "generation"
                    and name not in ("biggan-mimicry", "biggan-studiogan"))


@pytest.mark.parametrize("method", GENERATORS)
@pytest.mark.parametrize("resolution", [16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_method_trains_with_finite_losses_and_right_shapes(method, resolution, channels):
    tracker = RecordingTracker()
    trainer = Trainer(make_trial(method, resolution), random_data(channels, resolution), CPU, tracker=tracker)
    result = trainer.run()
    assert result.steps == 3
    assert [step for step, _ in tracker.metrics] == [1, 2, 3]
    for _, m in tracker.metrics:
        losses = {k: v for k, v in m.items() if k.startswith("loss_")}
        assert {"loss_d", "loss_g"} <= set(losses) and all(math.isfinite(v) for v in losses.values())
    grid = tracker.images["samples/final.png"]
    rows = 10 if method == "infogan" else 4 if getattr(trainer.method, "conditional", False) else 8  # per class/code
    assert grid.shape == (rows * 8, channels, resolution, resolution)
    if method != "stylegan":  # StyleGAN's output is linear, as the paper's: its grid is clamped when drawn
        assert grid.min() >= -1 and grid.max() <= 1, (grid.min(), grid.max())
    assert torch.isfinite(grid).all()
    assert trainer.method.sample(5, torch.Generator().manual_seed(0)).shape == (5, channels, resolution, resolution)


@pytest.mark.parametrize("method", ["infogan", "stylegan", "acgan", "wgan-gp-acgan", "cdcgan"])
def test_new_methods_resume_bit_identically(tmp_path, method):
    data = random_data(1, 16)
    trial = make_trial(method, 16, steps=8)
    full = RecordingTracker()
    Trainer(trial, data, CPU, tracker=full).run()
    cut = trial.model_copy(update={"log": trial.log.model_copy(update={"checkpoint_every": 3})})
    Trainer(cut, data, CPU, run_dir=tmp_path).run(stop_after=5)  # checkpoint at 3; steps 4-5 lost as in a crash
    resumed = RecordingTracker()
    Trainer(cut, data, CPU, run_dir=tmp_path, tracker=resumed).run()

    assert logged_losses(resumed.metrics) == logged_losses(full.metrics)[3:]


def test_mlp_discriminator_takes_channels_last_images_with_the_same_scores():
    """numerics.channels_last hands every net channels_last batches; the MLP's flatten once refused them (found by
    `bench check`)."""
    from bench.nets.mlp import MLPDiscriminator

    net = MLPDiscriminator(3, 8)
    images = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(net(images.contiguous(memory_format=torch.channels_last)), net(images))


def test_losses_move_over_training():
    tracker = RecordingTracker()
    Trainer(make_trial("dcgan", 16, steps=20), random_data(1, 16), CPU, tracker=tracker).run()
    losses_d = [m["loss_d"] for _, m in tracker.metrics]
    assert len(set(losses_d)) == 20  # every step changes the networks
    assert losses_d[-1] < losses_d[0]  # D learns to separate noise images from an untrained G


@pytest.mark.parametrize("resolution", [16, 32, 64, 128])
def test_conv_networks_adapt_to_resolution(resolution):
    method = build("dcgan", resolution, channels=3, n_classes=0)
    images = method.sample(2, torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, resolution, resolution)
    assert method.probe({"z": torch.randn(2, 100)})[1].shape == (2,)


def test_wgan_weights_stay_inside_the_clip_after_a_step():
    trainer = Trainer(make_trial("wgan", 16, steps=1, lr_d=0.5), random_data(1, 16), CPU)
    trainer.run()
    clip = trainer.method.hp.clip_value
    weights = torch.cat([p.detach().flatten() for p in trainer.method.nets["discriminator"].parameters()])
    assert weights.abs().max() <= clip
    assert weights.abs().max() == pytest.approx(clip)  # the large learning rate pushed some weights to the clip


def test_gradient_penalty_equals_hand_computed_value_on_a_linear_critic():
    # D(x) = w . x has gradient w everywhere, so the penalty is (||w|| - 1)^2 whatever the interpolation.
    w = torch.tensor([3.0, 4.0, 0.0, 0.0]).view(1, 1, 2, 2)

    def critic(x):
        return (x * w).flatten(1).sum(1)

    real, fake = torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2)
    eps = torch.rand(5, 1, 1, 1)
    assert gradient_penalty(critic, real, fake, eps).item() == pytest.approx((5.0 - 1.0) ** 2)


def test_gradient_penalty_on_a_quadratic_critic_uses_the_interpolates():
    # D(x) = sum(x^2) / 2 has gradient x: the penalty is mean over samples of (||x_hat|| - 1)^2.
    real = torch.tensor([[[[2.0]]], [[[0.0]]]])
    fake = torch.tensor([[[[0.0]]], [[[4.0]]]])
    eps = torch.tensor([0.5, 0.25]).view(2, 1, 1, 1)
    x_hat = torch.tensor([1.0, 3.0])  # 0.5*2 + 0.5*0 ; 0.25*0 + 0.75*4
    expected = ((x_hat.abs() - 1) ** 2).mean().item()
    value = gradient_penalty(lambda x: x.pow(2).flatten(1).sum(1) / 2, real, fake, eps).item()
    assert value == pytest.approx(expected) == pytest.approx(2.0)


def test_r1_equals_a_hand_computation_on_a_tiny_network():
    # D(x) = v . tanh(W x): grad_x D = W^T (v * (1 - tanh(Wx)^2)); R1 = mean over samples of its squared norm.
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3, bias=False), torch.nn.Tanh(),
                              torch.nn.Linear(3, 1, bias=False))
    real = torch.randn(6, 1, 2, 2)
    W, v = net[1].weight.detach(), net[3].weight.detach().view(-1)
    h = torch.tanh(real.flatten(1) @ W.T)
    grads = (v * (1 - h**2)) @ W
    expected = grads.pow(2).sum(dim=1).mean()
    assert r1_penalty(lambda x: net(x).view(-1), real).item() == pytest.approx(expected.item(), rel=1e-6)


def test_conditional_method_refuses_unlabelled_data():
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="labelled"):
        build("cdcgan", n_classes=0)
    with pytest.raises(BenchError, match="labelled"):
        build("dcgan", n_classes=0, conditioning="projection")
    build("dcgan", n_classes=0)  # unconditional: no labels needed


@pytest.mark.parametrize("method, params", [("cdcgan", {}), ("acgan", {}), ("wgan-gp-acgan", {}),
                                            ("dcgan", {"conditioning": "projection"}),
                                            ("lsgan", {"conditioning": "ac"}), ("wgan", {"conditioning": "concat"})])
def test_a_conditional_generator_gives_different_images_for_different_labels_from_the_same_z(method, params):
    m = build(method, **params)
    z = torch.randn(1, m.hp.latent_dim).repeat(4, 1)
    with m.eval_mode():
        images = m.generate({"z": z, "labels": torch.arange(4)})
    scale = images.abs().mean()  # an untrained G's images are faint: compare with their own size
    assert all((images[i] - images[j]).abs().mean() > 0.1 * scale for i in range(4) for j in range(i))


def test_sample_grids_of_conditional_methods_have_one_row_per_class():
    m = build("acgan", n_classes=4)
    latents = m.grid_latents(torch.randn(64, m.hp.latent_dim))
    assert latents["labels"].tolist() == [c for c in range(4) for _ in range(8)]
    assert torch.equal(latents["z"][:8], latents["z"][8:16])  # the same z along each column


def test_presets_are_their_base_with_other_defaults():
    acgan, dcgan = get_method("acgan"), get_method("dcgan")
    assert acgan.Hyper().conditioning == "ac" and issubclass(acgan, dcgan)
    assert get_method("wgan-gp-acgan").Hyper().gradient_penalty_weight == 10.0
    assert get_method("cdcgan").Hyper(conditioning="projection").conditioning == "projection"


def test_a_parameter_added_later_leaves_existing_trial_keys_alone():
    """`conditioning` came after trials were recorded: at its default it is not part of dcgan's params."""
    dcgan = get_method("dcgan").Hyper
    assert "conditioning" not in dcgan().as_params() and "label_embedding_dim" not in dcgan().as_params()
    assert dcgan(conditioning="ac").as_params()["conditioning"] == "ac"


def test_registries_refuse_a_second_method_or_dataset_of_the_same_name():
    from bench.data import register_dataset

    class Impostor(get_method("dcgan")):
        name = "dcgan"

    with pytest.raises(ValueError, match="registered twice"):
        register_method(Impostor)
    with pytest.raises(ValueError, match="registered twice"):
        register_dataset("digits", "another digits")(lambda root, split, resolution: None)
    assert METHODS["dcgan"] is not Impostor


@pytest.mark.parametrize("package", ["methods", "data"])
def test_modules_of_methods_and_data_import_their_base_never_their_package(package):
    """Imports run one way: base <- modules <- __init__ (the package re-exports base and imports the modules)."""
    import ast
    from pathlib import Path

    import bench

    folder = Path(bench.__file__).parent / package
    upward = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py" or (package, path.name) == ("data", "cli.py"):  # cli: the CLI's layer
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            upward += [f"{path.name}:{node.lineno}" for name in names if name == f"bench.{package}"]
    assert upward == []


def test_infogan_draws_its_codes_and_its_grid_walks_the_category():
    m = build("infogan", n_classes=0)
    latents = m.sample_latents(500, torch.Generator().manual_seed(0))
    assert latents["z"].shape == (500, 62) and latents["continuous"].shape == (500, 2)
    assert set(latents["category"].tolist()) == set(range(10))
    assert latents["continuous"].min() >= -1 and latents["continuous"].max() <= 1
    grid = m.grid_latents(torch.randn(64, 62))
    assert grid["category"].tolist() == [c for c in range(10) for _ in range(8)]
    walk = m.traversal("c2", torch.randn(3, 62), steps=5)
    assert walk["continuous"][:5, 1].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0] and walk["z"].shape == (15, 62)
    assert m.codes() == ["category", "c1", "c2"]


def test_info_loss_is_cross_entropy_plus_half_the_squared_error():
    m = build("infogan", n_classes=0)
    q = torch.zeros(2, 12)
    q[:, 10:] = torch.tensor([[0.5, 0.0], [0.0, 0.0]])
    category, continuous = torch.tensor([0, 3]), torch.zeros(2, 2)
    expected = math.log(10) + 0.1 * 0.5 * (0.25 + 0.0) / 2
    assert m.info_loss(q, category, continuous).item() == pytest.approx(expected)


def test_style_mixing_feeds_two_ws_to_the_synthesis():
    m = build("stylegan", n_classes=0)
    z1, z2 = torch.randn(1, m.hp.latent_dim), torch.randn(1, m.hp.latent_dim)
    layers = m.nets["generator_ema"].synthesis.num_ws
    ws = m.mixed_ws(z1, z2, crossover=2)
    mapping = m.nets["generator_ema"].mapping
    assert torch.equal(ws[0, :2], mapping(z1).expand(2, -1))
    assert torch.equal(ws[0, 2:], mapping(z2).expand(layers - 2, -1))
    # and in training: with probability 1 every image mixes, so changing the second latent changes the images
    g = m.nets["generator"]
    calls = []
    g.mapping.register_forward_hook(lambda module, args, out: calls.append(args[0].clone()))
    m.hp = m.hp.model_copy(update={"style_mixing_prob": 1.0})
    m._fake(g, 4, torch.Generator().manual_seed(0), CPU)
    assert len(calls) == 2 and not torch.equal(calls[0], calls[1])  # two latents through the mapping network


def test_truncation_pulls_samples_toward_the_mean_style():
    m = build("stylegan", n_classes=0)
    g = m.nets["generator_ema"]
    with torch.no_grad():
        g.mapping.w_avg.copy_(torch.randn_like(g.mapping.w_avg))
        z = torch.randn(3, m.hp.latent_dim)
        w = g.mapping(z)
        m.truncation = 0.5
        ws = m.mixed_ws(z, z, crossover=1)
    assert torch.allclose(ws[:, 0], g.mapping.w_avg + 0.5 * (w - g.mapping.w_avg), atol=1e-6)


def test_the_ema_generator_is_what_stylegan_samples_come_from():
    trainer = Trainer(make_trial("stylegan", 16, steps=3), random_data(1, 16), CPU)
    trainer.run()
    m = trainer.method
    ema, live = m.nets["generator_ema"], m.nets["generator"]
    assert m.eval_network == "generator_ema"
    assert not all(torch.equal(a, b) for a, b in zip(ema.parameters(), live.parameters(), strict=True))
    assert not any(p.requires_grad for p in ema.parameters())


# schedule knobs: a method takes critic_steps only where its step reads it ------------------------------------------

ADVERSARIAL = {"vanilla", "dcgan", "lsgan", "wgan", "wgan-gp", "cdcgan", "acgan", "wgan-gp-acgan"}


def test_critic_steps_is_a_hyperparameter_only_of_the_methods_whose_step_reads_it():
    takes = {name for name, cls in METHODS.items() if "critic_steps" in cls.Hyper.model_fields}
    assert ADVERSARIAL <= takes and not takes & {"infogan", "stylegan", "cyclegan", "pix2pix"}


def random_pairs(resolution: int = 16, n: int = 16) -> PairSet:
    gen = torch.Generator().manual_seed(2)
    return PairSet(*(torch.rand(2, n, 1, resolution, resolution, generator=gen) * 2 - 1), paired=True)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_step_draws_the_real_batches_real_batches_per_step_counts(method):
    """Epoch budgets and images/s are counted in real_batches_per_step: it must be what a step really draws."""
    cls = get_method(method)
    params = {"critic_steps": 3} if "critic_steps" in cls.Hyper.model_fields else {}
    data = random_pairs() if cls.task == "translation" else random_data(1, 16)
    trainer = Trainer(make_trial(method, 16, **params), data, CPU)
    drawn = []
    draw = trainer.batches.next
    trainer.batches.next = lambda: drawn.append(1) or draw()
    trainer.train_step()
    trainer.train_step()
    assert len(drawn) == 2 * cls.real_batches_per_step(trainer.method.hp) == 2 * params.get("critic_steps", 1)


def test_a_suite_giving_critic_steps_to_stylegan_is_a_one_line_error_naming_the_method(tiny_suite, monkeypatch,
                                                                                        capsys):
    """stylegan's step makes one D step per G step: `critic_steps: 3` used to train a third of its budget."""
    from bench.cli import main

    path = tiny_suite("name: s\nmethods: [{stylegan: {critic_steps: 3}}]\ndatasets: [digits]\nseeds: [0]\n"
                      "resolution: 16\nbudget: {steps: 2}\n")
    monkeypatch.setattr(sys, "argv", ["bench", "run", str(path), "--dry-run"])
    with pytest.raises(SystemExit) as end:
        main()
    err = capsys.readouterr().err
    assert end.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "unknown hyperparameter 'critic_steps' for method 'stylegan'" in err


def test_a_recorded_config_with_the_retired_critic_steps_still_loads(tmp_path):
    """Trials of stylegan, infogan, cyclegan and pix2pix recorded `critic_steps: 1` (their step never read it):
    their configs and checkpoints still load; any other value was never honoured and is refused."""
    from bench.checkpoint import method_from_checkpoint

    for method in ("infogan", "stylegan", "cyclegan", "pix2pix"):
        hyper = get_method(method).Hyper
        assert hyper(critic_steps=1) == hyper() and "critic_steps" not in hyper().as_params()
        with pytest.raises(BenchError, match="'critic_steps: 3' is retired"):
            hyper(critic_steps=3)
    trainer = Trainer(make_trial("stylegan", 16, steps=1), random_data(1, 16), CPU)
    state = trainer.state_dict()
    state["trial"]["params"]["critic_steps"] = 1  # as written before the knob was retired
    method, trial = method_from_checkpoint(state)
    assert method.hp == trainer.method.hp and trial["params"]["critic_steps"] == 1


def test_identity_params_puts_the_retired_critic_steps_back_only_where_it_was_retired():
    stylegan, dcgan = get_method("stylegan").Hyper().as_params(), get_method("dcgan").Hyper().as_params()
    assert identity_params("stylegan", stylegan) == {**stylegan, "critic_steps": 1}
    assert identity_params("stylegan", {**stylegan, "critic_steps": 1}) == {**stylegan, "critic_steps": 1}
    assert identity_params("dcgan", dcgan) == dcgan and dcgan["critic_steps"] == 1  # a field: it is in params


# The keys of these trials (the harness trial: width 8, 16 px, 6 steps). Retiring critic_steps changed none of them
# (checked against main before the retirement); the portable numerics (numerics.portable, numerics.threads) then
# changed every key on purpose, and these are the keys since.
KEYS_BEFORE_THE_RETIREMENT = {"infogan": "984bcd094a22", "stylegan": "36e9792ca78c", "cyclegan": "97be7158e141",
                              "pix2pix": "fb7bcb53a18d"}

@pytest.mark.parametrize("method", sorted(KEYS_BEFORE_THE_RETIREMENT))
def test_retiring_critic_steps_keeps_every_recorded_trial_key(method):
    dataset = {"cyclegan": "digits-thick", "pix2pix": "digits-edges"}.get(method, "digits")
    trial = Trial(suite="h", method=method, label=method, params=get_method(method).Hyper(width=8).as_params(),
                  dataset=DatasetSpec(name=dataset), seed=0, budget=Budget(steps=6), resolution=16, batch_size=16,
                  eval=EvalSpec(metrics=[]), numerics=Numerics(),
                  log=LogSpec(every=2, samples_every=1000, checkpoint_every=1000), device="cpu")
    assert trial.key == KEYS_BEFORE_THE_RETIREMENT[method]
    recorded = trial.model_copy(update={"params": {**trial.params, "critic_steps": 1}})  # as recorded before
    assert recorded.key == trial.key


def test_a_checkpoint_recorded_with_the_retired_critic_steps_resumes(tmp_path):
    data = random_data(1, 16)
    trial = make_trial("stylegan", 16, steps=4)
    trial = trial.model_copy(update={"log": trial.log.model_copy(update={"checkpoint_every": 2})})
    Trainer(trial, data, CPU, run_dir=tmp_path).run(stop_after=2)
    from bench import checkpoint

    state = checkpoint.load(tmp_path / checkpoint.CHECKPOINT_NAME)
    state["trial"]["params"]["critic_steps"] = 1  # as written before the knob was retired
    checkpoint.save_atomic(state, tmp_path / checkpoint.CHECKPOINT_NAME)
    resumed = Trainer(trial, data, CPU, run_dir=tmp_path)
    assert resumed.resume() and resumed.step == 2


# objectives by name ------------------------------------------------------------------------------------------------

def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


REAL, FAKE = [2.0, -1.0], [0.5, -3.0]  # D's scores of two real and two fake images
CLOSED_FORM = {  # name: (D loss, G loss) on REAL, FAKE, by hand
    "bce": ((softplus(-2.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2,
            (softplus(-0.5) + softplus(3.0)) / 2),
    "ls": (0.5 * (1.0 + 4.0) / 2 + 0.5 * (0.25 + 9.0) / 2, 0.5 * (0.25 + 16.0) / 2),  # a=0, b=1, c=1
    "wgan": (-1.25 - 0.5, 1.25),
    "hinge": ((0.0 + 2.0) / 2 + (1.5 + 0.0) / 2, 1.25),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_every_objective_name_gives_its_closed_form_values(name):
    from bench.methods.objectives import OBJECTIVES

    assert set(OBJECTIVES) == set(CLOSED_FORM)
    objective = OBJECTIVES[name]
    d, g = CLOSED_FORM[name]
    assert objective.d_loss(torch.tensor(REAL), torch.tensor(FAKE)).item() == pytest.approx(d, rel=1e-6)
    assert objective.g_loss(torch.tensor(FAKE)).item() == pytest.approx(g, rel=1e-6)


@pytest.mark.parametrize("method, default", [("vanilla", "bce"), ("dcgan", "bce"), ("acgan", "bce"),
                                             ("lsgan", "ls"), ("wgan", "wgan"), ("wgan-gp", "wgan")])
def test_the_objective_is_chosen_by_name_its_default_the_paper_s_and_out_of_the_key(method, default):
    from bench.methods.objectives import OBJECTIVES

    hyper = get_method(method).Hyper
    assert hyper().objective == default and "objective" not in hyper().as_params()
    assert hyper(objective="hinge").as_params()["objective"] == "hinge"
    m = build(method, objective="hinge")
    assert m.objective is OBJECTIVES["hinge"]
    d, g = CLOSED_FORM["hinge"]
    assert m.objective.d_loss(torch.tensor(REAL), torch.tensor(FAKE)).item() == pytest.approx(d)


def test_vanilla_keeps_its_generator_loss_option_under_bce_and_refuses_it_under_another_objective():
    minimax, non_saturating = build("vanilla").objective, build("vanilla", generator_loss="non_saturating").objective
    fake = torch.tensor(FAKE)
    assert minimax.g_loss(fake).item() == pytest.approx(-(softplus(0.5) + softplus(-3.0)) / 2)  # log(1 - D)
    assert non_saturating.g_loss(fake).item() == pytest.approx(CLOSED_FORM["bce"][1])  # -log D
    with pytest.raises(ValueError, match="generator_loss: non_saturating is a form of the bce objective"):
        get_method("vanilla").Hyper(objective="hinge", generator_loss="non_saturating")
    with pytest.raises(ValueError, match="a: the codes of the ls objective"):
        get_method("lsgan").Hyper(objective="hinge", a=-1.0)


# spectral norm and SNGAN --------------------------------------------------------------------------------------------

def normalised_layers(net: torch.nn.Module) -> dict[str, torch.nn.Module]:
    from torch.nn.utils import parametrize

    return {name: m for name, m in net.named_modules() if parametrize.is_parametrized(m, "weight")}


SPECTRAL_DISCRIMINATORS = {  # every discriminator of bench.nets.conv, built with norm="spectral"
    "plain": lambda conv: conv.ConvDiscriminator(1, 16, 8, norm="spectral"),
    "concat": lambda conv: conv.ConcatDiscriminator(1, 16, 8, 4, 5, norm="spectral"),
    "headed": lambda conv: conv.HeadedDiscriminator(1, 16, 8, "spectral", conv.class_head(16, 8, 4)),
    "projection": lambda conv: conv.ProjectionDiscriminator(1, 16, 8, 4, norm="spectral"),
}


@pytest.mark.parametrize("kind", sorted(SPECTRAL_DISCRIMINATORS))
def test_a_spectral_discriminator_normalises_every_conv_linear_and_embedding_and_has_no_batchnorm(kind):
    from bench.nets import conv

    d = SPECTRAL_DISCRIMINATORS[kind](conv)
    weighted = {name for name, m in d.named_modules()
                if isinstance(m, torch.nn.Conv2d | torch.nn.Linear | torch.nn.Embedding)}
    assert weighted and set(normalised_layers(d)) == weighted
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    assert all(len(m.parametrizations.weight) == 1 for m in normalised_layers(d).values())  # normalised once
    if kind == "projection":
        assert "embed" in normalised_layers(d)  # the class embedding too (Miyato & Koyama 2018)
    with torch.no_grad():  # DCGAN's N(0, 0.02) reaches the raw weights under the parametrisation
        conv.init_dcgan_weights(d)
        raw = torch.cat([m.parametrizations.weight.original.flatten() for m in normalised_layers(d).values()
                         if not isinstance(m, torch.nn.Embedding)])
    assert raw.std().item() == pytest.approx(0.02, rel=0.1)


def test_spectral_norm_keeps_the_largest_singular_value_of_every_layer_of_d_near_one():
    trainer = Trainer(make_trial("sngan", 16, steps=30, conditioning="projection"), random_data(1, 16), CPU)
    trainer.run()  # one power iteration per forward pass has tracked D's weights (measured: within 2e-4 of 1)
    d = trainer.method.nets["discriminator"].eval()  # eval: reading a weight does not run the power iteration
    layers = normalised_layers(d)
    assert len(layers) == 4  # three convolutions and the class embedding
    with torch.no_grad():
        for name, m in layers.items():
            raw = m.parametrizations.weight.original.flatten(1)
            used = m.weight.flatten(1)  # what the forward pass multiplies by
            assert torch.linalg.matrix_norm(used, ord=2).item() == pytest.approx(1.0, abs=0.01), name
            assert abs(torch.linalg.matrix_norm(raw, ord=2).item() - 1.0) > 0.1, name  # the norm does the work
            # (measured raw: 0.11 to 1.46)


def test_sngan_losses_move_and_stay_finite_over_a_short_run():
    tracker = RecordingTracker()
    Trainer(make_trial("sngan", 16, steps=20), random_data(1, 16), CPU, tracker=tracker).run()
    losses_d = [m["loss_d"] for _, m in tracker.metrics]
    losses_g = [m["loss_g"] for _, m in tracker.metrics]
    assert all(math.isfinite(v) for v in losses_d + losses_g)
    assert len(set(losses_d)) == 20 and len(set(losses_g)) == 20  # every step changes the networks
    assert losses_d[0] == pytest.approx(2.0, abs=0.1)  # hinge at D's first scores, all near 0: 1 + 1
    assert losses_d[-1] < losses_d[0] - 0.2  # D learns to separate noise images from an untrained G


def test_an_sngan_trial_resumes_bit_identically_power_iteration_vectors_included(tmp_path):
    data = random_data(1, 16)
    trial = make_trial("sngan", 16, steps=8, conditioning="projection")
    full = RecordingTracker()
    uninterrupted = Trainer(trial, data, CPU, tracker=full)
    uninterrupted.run()
    cut = trial.model_copy(update={"log": trial.log.model_copy(update={"checkpoint_every": 3})})
    Trainer(cut, data, CPU, run_dir=tmp_path).run(stop_after=5)  # checkpoint at 3; steps 4-5 lost as in a crash
    resumed = RecordingTracker()
    again = Trainer(cut, data, CPU, run_dir=tmp_path, tracker=resumed)
    again.run()

    assert logged_losses(resumed.metrics) == logged_losses(full.metrics)[3:]
    end, resumed_end = (t.method.nets["discriminator"].state_dict() for t in (uninterrupted, again))
    vectors = [k for k in end if k.endswith("._u") or k.endswith("._v")]
    assert len(vectors) == 8 and all(torch.equal(end[k], resumed_end[k]) for k in end)


def test_every_default_search_space_names_only_hyperparameters_of_its_method():
    from bench.space import DEFAULT_SPACES, TRIAL_LEVEL

    for method, space in DEFAULT_SPACES.items():
        assert set(space) - set(TRIAL_LEVEL) <= set(get_method(method).Hyper.model_fields), method
    assert DEFAULT_SPACES["sngan"]["critic_steps"].values == (1, 5)
