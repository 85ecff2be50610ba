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


def test_resnet_with_conditioning_is_refused_in_one_line():
    with pytest.raises(ValueError, match="architecture: resnet takes conditioning: none"):
        get_method("sngan").Hyper(architecture="resnet", conditioning="projection")
