"""The portable path's convolution, transposed convolution and linear kernels (bench/portable.py): torch's results
in float64 (to rounding), their gradients and second gradients, channels-last outputs, what they leave to torch,
and the refusal when numpy's OpenBLAS is not on the pinned portable."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench import numerics, portable
from bench.errors import BenchError

# (input N, C, H, W), (out channels, kernel), stride, padding, dilation: DCGAN's 4/2/1, the ResNets' 3/1/1 and 1x1,
# CycleGAN's 7x7, a strided 3x3, a dilated one, a kernel as large as its image (DCGAN's last D layer)
GEOMETRIES = [((2, 2, 7, 7), (3, 4), 2, 1, 1), ((2, 2, 6, 5), (3, 3), 1, 1, 1), ((2, 2, 5, 5), (3, 1), 1, 0, 1),
              ((1, 2, 8, 7), (2, 7), 1, 3, 1), ((2, 2, 7, 7), (3, 3), 3, 2, 1), ((1, 2, 7, 6), (3, 3), 2, 0, 2),
              ((2, 2, 4, 4), (3, 4), 1, 0, 1)]
# the transposed ones also with output_padding, which must stay below the stride or the dilation
TRANSPOSED = [(*g, extra) for g in GEOMETRIES for extra in (0, 1) if extra < max(g[2], g[4])]


def doubles(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(sum(shape)),
                       requires_grad=True)


@pytest.mark.parametrize("shape, out, stride, padding, dilation", GEOMETRIES)
def test_conv2d_is_torchs_convolution_with_its_gradients(shape, out, stride, padding, dilation):
    x, w, b = doubles(*shape), doubles(out[0], shape[1], out[1], out[1]), doubles(out[0])
    ours = portable.conv2d(x, w, b, stride, padding, dilation)
    assert torch.allclose(ours, F.conv2d(x, w, b, stride, padding, dilation), rtol=1e-12, atol=1e-12)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    check = torch.autograd.gradgradcheck if (stride, padding) == (2, 1) else torch.autograd.gradcheck
    assert check(lambda *t: portable.conv2d(*t, stride, padding, dilation), (x, w, b))  # second order: DCGAN's


@pytest.mark.parametrize("shape, out, stride, padding, dilation, extra", TRANSPOSED)
def test_conv_transpose2d_is_torchs_with_its_gradients(shape, out, stride, padding, dilation, extra):
    x, w, b = doubles(*shape), doubles(shape[1], out[0], out[1], out[1]), doubles(out[0])
    ours = portable.conv_transpose2d(x, w, b, stride, padding, extra, 1, dilation)
    theirs = F.conv_transpose2d(x, w, b, stride, padding, extra, 1, dilation)
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    check = torch.autograd.gradgradcheck if (stride, padding, extra) == (2, 1, 0) else torch.autograd.gradcheck
    assert check(lambda *t: portable.conv_transpose2d(*t, stride, padding, extra, 1, dilation), (x, w, b))


def test_linear_takes_any_leading_dimensions():
    x, w, b = doubles(2, 3, 5), doubles(4, 5), doubles(4)
    assert torch.allclose(portable.linear(x, w, b), F.linear(x, w, b), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradgradcheck(portable.linear, (x, w, b))


def test_torchs_layers_take_the_kernels_inside_the_context_and_their_own_outside():
    torch.manual_seed(0)
    layers = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.ConvTranspose2d(8, 3, 4, 2, 1),
                           nn.Flatten(), nn.Linear(3 * 16 * 16, 5))
    x = torch.randn(4, 3, 16, 16)
    with portable.counting_flops() as flops, portable.portable_kernels(2):
        ours = layers(x)
    assert flops[0] > 0
    with portable.counting_flops() as outside:
        theirs = layers(x)
    assert outside[0] == 0 and torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_what_the_kernels_do_not_cover_is_torchs_bit_for_bit():
    """A grouped convolution and string padding stay ATen's; so do integer tensors' products."""
    x, w = torch.randn(2, 4, 8, 8), torch.randn(6, 2, 3, 3)
    with portable.counting_flops() as flops, portable.portable_kernels(2):
        grouped = F.conv2d(x, w, groups=2)
        same = F.conv2d(x, torch.randn(5, 4, 3, 3, generator=torch.Generator().manual_seed(1)), padding="same")
    assert flops[0] == 0
    assert torch.equal(grouped, F.conv2d(x, w, groups=2))
    assert same.shape == (2, 5, 8, 8)


def test_a_scripted_network_like_inception_keeps_torchs_kernels_inside_the_context():
    """Inception is TorchScript: its convolutions run in the interpreter, below the mode, so a portable trial's
    evaluation keeps oneDNN's speed (numerics.feature_kernels) and its features are those of torch's own kernels."""
    torch.manual_seed(0)
    net = torch.jit.script(nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 4, 3, 2, 1)).eval())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        with portable.counting_flops() as flops, portable.portable_kernels(2):
            inside = net(x)
        outside = net(x)
    assert flops[0] == 0 and torch.equal(inside, outside)


def test_the_same_inputs_give_the_same_bits_again():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 4, 2, 1), nn.BatchNorm2d(16), nn.ConvTranspose2d(16, 3, 4, 2, 1))
    x = torch.randn(8, 3, 32, 32)

    def once():
        with portable.portable_kernels(2):
            out = net(x)
            out.square().sum().backward()
        grads = [p.grad.clone() for p in net.parameters()]
        net.zero_grad()
        return out.detach(), grads

    (a, grads_a), (b, grads_b) = once(), once()
    assert torch.equal(a, b) and all(torch.equal(g, h) for g, h in zip(grads_a, grads_b, strict=True))


def test_a_gradient_penalty_computes_no_weight_gradient():
    """autograd.grad(D(x), x) needs only the input's gradient: the kernels skip the weights' products, as ATen's
    convolutions do (an eighth of the FLOPs here, which a full backward pays)."""
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Conv2d(3, 16, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(16, 1, 8))
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    with portable.portable_kernels(2):
        with portable.counting_flops() as penalty:
            torch.autograd.grad(critic(x).sum(), x)
        with portable.counting_flops() as full:
            critic(x).sum().backward()
    assert penalty[0] < full[0]


def test_a_portable_trial_is_refused_in_one_line_when_numpys_blas_is_not_pinned(monkeypatch):
    class Unpinned:
        architecture, version = "Zen", "0.3.31"

    monkeypatch.setattr(portable, "_openblas", lambda: Unpinned())
    with pytest.raises(BenchError, match="import bench before numpy"):
        numerics.check(True, torch.device("cpu"))
    with pytest.raises(BenchError, match="import bench before numpy"), portable.portable_kernels(2):
        pass


def test_the_fingerprint_names_the_gemm_kernels_and_their_thread_rule():
    entry = numerics.fingerprint(torch.device("cpu"))["gemm"]
    assert entry.startswith("openblas ") and " Haswell, threads from " in entry
    assert "gemm" in numerics.DECIDING
