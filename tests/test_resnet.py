"""The 32 px ResNet SNGAN baseline (bench/nets/resnet.py) and its two published training presets."""

import pytest
import torch

from bench.methods import DataShape, get_method
from bench.nets.resnet import DownBlock, ResNetDiscriminator, ResNetGenerator, UpBlock
from bench.train import Trainer
from tests.support import RecordingTracker, logged_losses, make_trial, random_data

CPU = torch.device("cpu")


def test_the_32_px_networks_have_mimicrys_layout():
    g, d = ResNetGenerator(128, 3, 32, width=128), ResNetDiscriminator(3, 32, width=128)
    assert [type(b) for b in g.blocks] == [UpBlock] * 3 and g.linear.out_features == 4 * 4 * 256
    blocks = list(d.blocks)
    assert [type(b) for b in blocks] == [DownBlock] * 4 and blocks[0].optimised
    assert [b.downsample for b in blocks] == [True, True, False, False]
    z = torch.randn(2, 128, generator=torch.Generator().manual_seed(0))
    assert g(z).shape == (2, 3, 32, 32) and d(g(z)).shape == (2,)
    assert g(z).abs().max() <= 1


@pytest.mark.parametrize("resolution", [16, 28, 64])
def test_other_resolutions_keep_the_layout_rule(resolution):
    g, d = ResNetGenerator(16, 1, resolution, width=8), ResNetDiscriminator(1, resolution, width=8)
    images = g(torch.randn(3, 16))
    assert images.shape == (3, 1, resolution, resolution) and d(images).shape == (3,)


def test_every_layer_of_the_discriminator_is_spectrally_normalised():
    from torch.nn.utils import parametrize

    d = ResNetDiscriminator(3, 32, width=16)
    layers = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    for _ in range(30):  # the power iteration converges: each weight's largest singular value is then ~1
        d(torch.randn(2, 3, 32, 32))
    d.eval()
    top = [torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item() for m in layers]
    assert all(0.9 < s < 1.1 for s in top), top


@pytest.mark.parametrize("method", ["sngan-mimicry", "sngan-studiogan"])
def test_a_resnet_sngan_trains_on_cifar_shaped_data_and_its_losses_move(method):
    tracker = RecordingTracker()
    trial = make_trial(method, 32, steps=6)  # width 8, 5 D steps per G step
    trainer = Trainer(trial, random_data(3, 32, n=64), CPU, tracker=tracker)
    trainer.run()
    first, last = tracker.metrics[0][1], tracker.metrics[-1][1]
    assert all(v == v for v in last.values()) and last["loss_d"] != first["loss_d"]
    assert type(trainer.method.nets["generator"]) is ResNetGenerator


def test_the_presets_are_their_sources_settings():
    mimicry, studiogan = get_method("sngan-mimicry").Hyper(), get_method("sngan-studiogan").Hyper()
    assert (mimicry.beta1, mimicry.beta2, mimicry.critic_steps, mimicry.lr_decay, mimicry.adam_eps) == \
        (0.0, 0.9, 5, "linear", 1e-8)
    assert (studiogan.beta1, studiogan.beta2, studiogan.critic_steps, studiogan.lr_decay, studiogan.adam_eps) == \
        (0.5, 0.999, 5, "none", 1e-6)
    assert mimicry.architecture == studiogan.architecture == "resnet" and mimicry.objective == "hinge"
    assert (mimicry.lr_g, mimicry.lr_d, mimicry.latent_dim, mimicry.width) == (2e-4, 2e-4, 128, 128)
    opt = get_method("sngan-studiogan")(studiogan.model_copy(update={"width": 8}), DataShape(3, 32, 0, None))
    opt.setup(CPU)
    assert opt.optimizers["discriminator"].param_groups[0]["eps"] == 1e-6


@pytest.mark.slow
def test_mimicrys_learning_rate_falls_linearly_to_zero_and_resumes_bit_identically(tmp_path):
    trial = make_trial("sngan-mimicry", 16, steps=8)
    full = RecordingTracker()
    trainer = Trainer(trial, random_data(1, 16), CPU, tracker=full)
    trainer.run()
    assert trainer.method.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    cut = trial.model_copy(update={"log": trial.log.model_copy(update={"checkpoint_every": 3})})
    stopped = Trainer(cut, random_data(1, 16), CPU, run_dir=tmp_path)
    stopped.run(stop_after=4)
    assert stopped.method.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(2e-4 * (1 - 4 / 8))
    resumed = RecordingTracker()
    Trainer(cut, random_data(1, 16), CPU, run_dir=tmp_path, tracker=resumed).run()

    assert logged_losses(resumed.metrics) == logged_losses(full.metrics)[3:]


def test_resnet_conditions_by_projection_only_and_says_so_in_one_line():
    get_method("sngan").Hyper(architecture="resnet", conditioning="projection")
    with pytest.raises(ValueError, match="architecture: resnet takes conditioning: none or projection"):
        get_method("sngan").Hyper(architecture="resnet", conditioning="concat")


def test_the_conditional_resnet_takes_its_labels_through_its_norms_and_the_projection():
    """The same z (and image) under another label: other images from G's conditional BatchNorms, another score from
    D's projection; without classes the nets take no label at all."""
    torch.manual_seed(0)
    g = ResNetGenerator(80, 3, 32, width=8, n_classes=4, hierarchical=True).eval()
    d = ResNetDiscriminator(3, 32, width=8, n_classes=4)
    z, a, b = torch.randn(2, 80), torch.tensor([0, 0]), torch.tensor([1, 1])
    assert not torch.equal(g(z, a), g(z, b)) and torch.equal(g(z, a), g(z, a))
    x = torch.randn(2, 3, 32, 32)
    assert not torch.equal(d(x, a), d(x, b))
    assert ResNetGenerator(80, 3, 32, width=8).embed is None and ResNetDiscriminator(3, 32, width=8).embed is None
    assert g.chunks == [20] * 4  # 3 blocks + the linear layer
    assert ResNetGenerator(81, 3, 16, width=8, n_classes=4, hierarchical=True).chunks == [27, 27, 27]
    assert ResNetGenerator(80, 3, 16, width=8, n_classes=4, hierarchical=True).chunks == [27, 27, 26]


@pytest.mark.parametrize("method", ["sngan", "biggan"])
def test_a_conditional_resnet_trains_on_labelled_cifar_shaped_data(method):
    params = {"architecture": "resnet", "conditioning": "projection"} if method == "sngan" else {}
    tracker = RecordingTracker()
    trainer = Trainer(make_trial(method, 32, steps=4, **params), random_data(3, 32, n=64), CPU, tracker=tracker)
    trainer.run()
    last = tracker.metrics[-1][1]
    assert all(v == v for v in last.values()) and last["loss_d"] != tracker.metrics[0][1]["loss_d"]
    assert trainer.method.nets["generator"].embed is not None and trainer.method.nets["discriminator"].embed is not None


def test_biggan_samples_come_from_the_moving_average_of_g_which_copies_g_before_its_start(tmp_path):
    trial = make_trial("biggan", 16, steps=6, ema_start=3, ema_decay=0.5)
    trainer = Trainer(trial, random_data(1, 16), CPU)
    assert trainer.method.eval_network == "generator_ema"
    trainer.run(stop_after=2)
    g, ema = trainer.method.nets["generator"], trainer.method.nets["generator_ema"]
    assert all(torch.equal(a, b) for a, b in zip(g.parameters(), ema.parameters(), strict=True))
    trainer.run(stop_after=4)
    assert not all(torch.equal(a, b) for a, b in zip(g.parameters(), ema.parameters(), strict=True))
    from torch.nn.utils import parametrize

    convs = [m for m in g.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    assert all(parametrize.is_parametrized(m, "weight") for m in convs) and not parametrize.is_parametrized(
        g.embed, "weight")  # spectral norm in G, but not on its shared embedding (BigGAN's)


def test_biggan_resumes_bit_identically(tmp_path):
    trial = make_trial("biggan", 16, steps=6, ema_start=2)
    full = RecordingTracker()
    uninterrupted = Trainer(trial, random_data(1, 16), CPU, tracker=full)
    uninterrupted.run()
    cut = trial.model_copy(update={"log": trial.log.model_copy(update={"checkpoint_every": 3})})
    Trainer(cut, random_data(1, 16), CPU, run_dir=tmp_path).run(stop_after=4)
    resumed = RecordingTracker()
    again = Trainer(cut, random_data(1, 16), CPU, run_dir=tmp_path, tracker=resumed)
    again.run()
    assert logged_losses(resumed.metrics) == logged_losses(full.metrics)[3:]
    for name in ("generator", "generator_ema"):
        for a, b in zip(uninterrupted.method.nets[name].state_dict().values(),
                        again.method.nets[name].state_dict().values(), strict=True):
            assert torch.equal(a, b), name


def test_the_biggan_presets_are_their_sources_settings():
    mimicry, studiogan = get_method("biggan-mimicry").Hyper(), get_method("biggan-studiogan").Hyper()
    assert (mimicry.beta1, mimicry.beta2, mimicry.critic_steps, mimicry.lr_decay) == (0.0, 0.9, 5, "linear")
    assert (studiogan.beta1, studiogan.beta2, studiogan.critic_steps, studiogan.adam_eps) == (0.5, 0.999, 5, 1e-6)
    for hp in (mimicry, studiogan, get_method("biggan").Hyper()):
        assert (hp.conditioning, hp.embedding_dim, hp.hierarchical, hp.ema_decay, hp.ema_start, hp.objective) == \
            ("projection", 128, True, 0.9999, 1000, "hinge")
    with pytest.raises(ValueError):
        get_method("biggan").Hyper(conditioning="ac")
