"""Every method trains a few steps at two resolutions and both channel counts, with finite losses."""

import math

import pytest
import torch

from bench.data import ImageSet
from bench.methods import METHODS, get_method
from bench.methods.wgan_gp import gradient_penalty
from bench.suite import Budget, DatasetSpec, EvalSpec, LogSpec, Numerics, Trial
from bench.train import Trainer


def make_trial(method: str, resolution: int, steps: int = 3, **params) -> Trial:
    hyper = get_method(method).Hyper(width=8, **params).model_dump()
    return Trial(suite="t", method=method, label=method, params=hyper, dataset=DatasetSpec(name="digits"), seed=0,
                 budget=Budget(steps=steps), resolution=resolution, batch_size=8, eval=EvalSpec(metrics=[]),
                 numerics=Numerics(), log=LogSpec(every=1, samples_every=1000, checkpoint_every=1000), device="cpu")


def random_data(channels: int, resolution: int, n: int = 32, classes: int = 4) -> ImageSet:
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(n, channels, resolution, resolution, generator=gen) * 2 - 1
    labels = torch.arange(n) % classes
    return ImageSet(images, labels, [str(i) for i in range(classes)])


class RecordingTracker:
    def __init__(self):
        self.metrics, self.images = [], {}

    def log_metrics(self, metrics, step):
        self.metrics.append((step, dict(metrics)))

    def log_png(self, image, artifact_path):
        self.images[artifact_path] = image


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("resolution", [16, 28])
@pytest.mark.parametrize("channels", [1, 3])
def test_method_trains_with_finite_losses_and_right_shapes(method, resolution, channels):
    tracker = RecordingTracker()
    trainer = Trainer(make_trial(method, resolution), random_data(channels, resolution), torch.device("cpu"),
                      tracker=tracker)
    result = trainer.run()
    assert result.steps == 3
    assert [step for step, _ in tracker.metrics] == [1, 2, 3]
    for _, m in tracker.metrics:
        assert math.isfinite(m["loss_d"]) and math.isfinite(m["loss_g"])
    grid = tracker.images["samples/final.png"]
    assert grid.shape == (64, channels, resolution, resolution)
    assert grid.min() >= -1 and grid.max() <= 1


def test_losses_move_over_training():
    tracker = RecordingTracker()
    Trainer(make_trial("dcgan", 16, steps=20), random_data(1, 16), torch.device("cpu"), tracker=tracker).run()
    losses_d = [m["loss_d"] for _, m in tracker.metrics]
    assert len(set(losses_d)) == 20  # every step changes the networks
    assert losses_d[-1] < losses_d[0]  # D learns to separate noise images from an untrained G


@pytest.mark.parametrize("resolution", [16, 32, 64, 128])
def test_conv_networks_adapt_to_resolution(resolution):
    method = get_method("dcgan")(get_method("dcgan").Hyper(width=4), 3, resolution)
    z = torch.randn(2, 100)
    images = method.build_generator()(z)
    assert images.shape == (2, 3, resolution, resolution)
    assert method.build_discriminator()(images).shape == (2,)


def test_wgan_weights_stay_inside_the_clip_after_a_step():
    trainer = Trainer(make_trial("wgan", 16, steps=1, lr_d=0.5), random_data(1, 16), torch.device("cpu"))
    trainer.run()
    clip = trainer.method.hp.clip_value
    weights = torch.cat([p.detach().flatten() for p in trainer.discriminator.parameters()])
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


def test_conditional_method_refuses_unlabelled_data():
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="labelled"):
        get_method("cdcgan")(get_method("cdcgan").Hyper(), 1, 16, n_classes=0)
