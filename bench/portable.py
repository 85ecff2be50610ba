"""The portable path's fast kernels: convolution, transposed convolution and linear layers as GEMMs on OpenBLAS's
Haswell kernels, which give the same bits on every x86-64 CPU with AVX2 and FMA.

Why not torch's own: ATen sends an fp32 GEMM to MKL, which gives one result on Intel and AMD only on its SSE2 branch
(MKL_CBWR=COMPATIBLE: ~40 GFLOP/s on 2 cores of an AMD EPYC), and convolutions to oneDNN, whose blocking follows
the CPU's cache sizes. numpy's OpenBLAS held to one kernel family (OPENBLAS_CORETYPE=HASWELL, set by bench before
numpy loads) runs the same instructions in the same order on any CPU that has them (~130 GFLOP/s there). Its result
does depend on how many threads split a product (they change which rows fall on a kernel's edge), so that count is
a fixed rule of the shape: a trial's `numerics.threads` for products of at least PARALLEL_FROM multiply-adds, one
thread below (where waking a second thread costs more than it saves).

A convolution is a gather of the input's windows (a copy: no arithmetic) and one GEMM; a transposed convolution is
one GEMM and the adjoint of that gather, which adds each kernel tap's slice in row-major tap order onto zeros, so
every output element sums its terms in one fixed order. The backward passes are made of the same parts (gather and
overlap-add are each other's adjoints), so they are differentiable again: gradient penalties and R1 work. Images
flow channels-last (an NCHW view of NHWC memory, as torch's channels_last format): a window's row of pixels is then
one run of memory, and a layer's GEMM output is the next layer's input without a copy.

`portable_kernels(threads)` routes torch's conv2d, conv_transpose2d and linear on CPU float tensors through these
while it is active (a TorchFunctionMode: every network, bench's and torch's layers alike, takes them); what they do
not cover (grouped convolutions, string padding, unbatched images) keeps ATen's kernels under bench's MKL pin.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from bench.errors import BenchError

CORETYPE = "Haswell"  # threadpoolctl's name of the kernels OPENBLAS_CORETYPE=HASWELL selects
# Products of at least this many multiply-adds (M*N*K) run on the trial's threads, smaller ones on one: measured on
# 2 cores of an AMD EPYC (Zen 3), 2 threads paid from ~2^25 (a 1024x64x512 product: 0.81 ms on one, 0.49 on two).
# Part of the bits: changing it changes which products are split, so the fingerprint names it.
PARALLEL_FROM = 2**25
# the active portable_kernels' threads; a FLOP counter while one counts; whether torch's own kernels are asked for
_STATE = {"threads": 1, "flops": None, "aten": False}


@cache
def _openblas():
    """numpy's OpenBLAS as threadpoolctl sees it (its version, kernel family, a thread setter)."""
    from threadpoolctl import ThreadpoolController  # what exposes the library numpy links

    np.ones((2, 2), np.float32) @ np.ones((2, 2), np.float32)  # OpenBLAS loaded and initialised
    found = [c for c in ThreadpoolController().lib_controllers if c.internal_api == "openblas"
             and "numpy" in c.filepath]
    return found[0] if found else None


def describe() -> str:
    """The GEMM library, its kernels and the thread rule, for the numerics fingerprint."""
    blas = _openblas()
    if blas is None:
        return "none"
    return f"openblas {blas.version} {blas.architecture}, threads from {PARALLEL_FROM} multiply-adds"


def pinned() -> bool:
    """Whether numpy's OpenBLAS runs the Haswell kernels (it read OPENBLAS_CORETYPE when numpy loaded)."""
    blas = _openblas()
    return blas is not None and blas.architecture == CORETYPE


def _blas_ready(a: torch.Tensor) -> torch.Tensor:
    """`a` as BLAS takes a matrix without a copy (row or column major), else a contiguous copy. numpy would loop
    over any other layout in its own code: slower, and another summation order."""
    rows, cols = a.stride()
    if (cols == 1 and rows >= max(1, a.shape[1])) or (rows == 1 and cols >= max(1, a.shape[0])):
        return a
    return a.contiguous()


def _gemm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = _blas_ready(a.detach()), _blas_ready(b.detach())
    (m, k), n = a.shape, b.shape[1]
    out = torch.empty(m, n, dtype=a.dtype)
    blas = _openblas()
    blas.set_num_threads(_STATE["threads"] if m * n * k >= PARALLEL_FROM else 1)
    try:
        with np.errstate(all="ignore"):  # inf and NaN propagate as in torch's kernels; the loop reports them
            np.matmul(a.numpy(), b.numpy(), out=out.numpy())
    finally:
        blas.set_num_threads(1)  # numpy's other users (FID's statistics) keep one thread
    if _STATE["flops"] is not None:
        _STATE["flops"][0] += 2 * m * n * k
    return out


class MatMul(torch.autograd.Function):
    """a @ b of two matrices on OpenBLAS; its gradients are products of the same kind (so twice differentiable)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _gemm(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = MatMul.apply(grad, b.t()) if _wanted(ctx, 0) else None
        grad_b = MatMul.apply(a.t(), grad) if _wanted(ctx, 1) else None
        return grad_a, grad_b


def _wanted(ctx, index: int) -> bool:
    """Whether this backward pass uses the gradient of input `index`: `needs_input_grad` says only that it could.
    A gradient penalty's `autograd.grad(D(x), x)` wants no weight gradients, which ATen's own convolutions skip too
    (a third of WGAN-GP's products). The engine's answer is a private torch function; without it, every one."""
    if not ctx.needs_input_grad[index]:
        return False
    node = ctx.next_functions[index][0]
    try:
        return node is None or torch._C._will_engine_execute_node(node)
    except (AttributeError, RuntimeError):  # a leaf that autograd.grad asked for, or a torch without it
        return True


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _rows(size: int, out: int, k: int, stride: int, padding: int, dilation: int) -> tuple[slice, slice]:
    """For tap k of one axis: the window positions i whose tap lands inside the image (0 <= stride*i - padding +
    dilation*k < size, 0 <= i < out) and the image positions they land on, as slices."""
    offset = dilation * k - padding
    first = max(0, -(offset // stride))  # the smallest i with stride*i + offset >= 0
    count = max(0, min(out - 1, (size - 1 - offset) // stride) - first + 1)
    start = stride * first + offset
    return slice(first, first + count), slice(start, start + stride * (count - 1) + 1 if count else start, stride)


@cache
def _taps(size: tuple[int, int], out: tuple[int, int], kernel: tuple[int, int], stride, padding, dilation) -> list:
    """(image index, windows index) of every tap that lands inside the image, in row-major tap order."""
    found = []
    for i in range(kernel[0]):
        rows, ys = _rows(size[0], out[0], i, stride[0], padding[0], dilation[0])
        for j in range(kernel[1]):
            columns, xs = _rows(size[1], out[1], j, stride[1], padding[1], dilation[1])
            if rows.stop > rows.start and columns.stop > columns.start:
                found.append(((slice(None), ys, xs), (slice(None), rows, columns, i, j)))
    return found


def _windows(x: torch.Tensor, kernel, stride, padding, dilation, out_size) -> torch.Tensor:
    """The im2col of x (an [N, C, H, W] tensor, any layout), channels innermost: [N, Ho, Wo, kh, kw, C],
    contiguous, zero where a window reaches into the padding. In channels-last memory a window's row of kw pixels
    is one run of kw*C numbers, so the copy moves long runs."""
    n, c, h, w = x.shape
    padded = x.new_zeros((n, h + 2 * padding[0], w + 2 * padding[1], c))
    padded[:, padding[0]:padding[0] + h, padding[1]:padding[1] + w] = x.permute(0, 2, 3, 1)
    sn, sh, sw, sc = padded.stride()
    view = padded.as_strided((n, out_size[0], out_size[1], kernel[0], kernel[1], c),
                             (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1], sc))
    return view.contiguous()


def _overlap_add(cols: torch.Tensor, size, stride, padding, dilation) -> torch.Tensor:
    """The adjoint of `_windows`: each tap's [N, Ho, Wo, C] slice of cols added into a zero [N, H, W, C] at its
    offset, taps in row-major order, so every output element sums its contributions in one fixed order; returned as
    an NCHW view of that channels-last memory."""
    n, ho, wo, kh, kw, c = cols.shape
    out = cols.new_zeros((n, size[0], size[1], c))
    for image, windows in _taps(tuple(size), (ho, wo), (kh, kw), stride, padding, dilation):
        out[image].add_(cols[windows])  # not `+=`, which copies the slice back onto itself
    return out.permute(0, 3, 1, 2)


class Windows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation, out_size):
        ctx.geometry = (tuple(x.shape[2:]), stride, padding, dilation)
        return _windows(x, kernel, stride, padding, dilation, out_size)

    @staticmethod
    def backward(ctx, grad):
        return OverlapAdd.apply(grad, *ctx.geometry), None, None, None, None, None


class OverlapAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cols, size, stride, padding, dilation):
        ctx.geometry = (tuple(cols.shape[3:5]), stride, padding, dilation, tuple(cols.shape[1:3]))
        return _overlap_add(cols, size, stride, padding, dilation)

    @staticmethod
    def backward(ctx, grad):
        return Windows.apply(grad, *ctx.geometry), None, None, None, None


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cols = Windows.apply(x, (kh, kw), stride, padding, dilation, (ho, wo)).reshape(n * ho * wo, kh * kw * c)
    taps = weight.permute(0, 2, 3, 1).reshape(out_c, kh * kw * c)  # columns in the windows' (kh, kw, C) order
    out = MatMul.apply(cols, taps.t()).reshape(n, ho, wo, out_c).permute(0, 3, 1, 2)
    return out + bias.view(1, out_c, 1, 1) if bias is not None else out


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    stride, padding, dilation, extra = _pair(stride), _pair(padding), _pair(dilation), _pair(output_padding)
    n, c, h, w = x.shape
    _, out_c, kh, kw = weight.shape
    ho = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + extra[0] + 1
    wo = (w - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + extra[1] + 1
    pixels = _channels_last(x).permute(0, 2, 3, 1).reshape(n * h * w, c)  # a view when x is channels-last
    taps = weight.permute(0, 2, 3, 1).reshape(c, kh * kw * out_c)
    cols = MatMul.apply(pixels, taps).reshape(n, h, w, kh, kw, out_c)
    out = OverlapAdd.apply(cols, (ho, wo), stride, padding, dilation)
    return out + bias.view(1, out_c, 1, 1) if bias is not None else out


def linear(x, weight, bias=None):
    out = MatMul.apply(x.reshape(-1, x.shape[-1]), weight.t()).reshape(*x.shape[:-1], weight.shape[0])
    return out + bias if bias is not None else out


def _arguments(names: tuple[str, ...], args: tuple, kwargs: dict) -> dict:
    return {**dict(zip(names, args, strict=False)), **kwargs}


CONV = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
CONV_T = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")
LINEAR = ("input", "weight", "bias")


def _covered(a: dict) -> bool:
    """The calls these kernels compute: CPU float32/float64 tensors, one group, batched 4-D images, numeric padding."""
    x, weight = a["input"], a["weight"]
    tensors = [t for t in (x, weight, a.get("bias")) if t is not None]
    return (all(t.device.type == "cpu" and t.dtype == x.dtype for t in tensors) and x.dtype in (torch.float32,
            torch.float64) and a.get("groups", 1) == 1 and not isinstance(a.get("padding", 0), str)
            and x.numel() > 0)


class PortableKernels(TorchFunctionMode):
    """conv2d, conv_transpose2d and linear through this module's kernels; every other call as it is."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _STATE["aten"]:
            return func(*args, **kwargs)
        if func is torch.conv2d:
            a = _arguments(CONV, args, kwargs)
            if a["input"].dim() == 4 and _covered(a):
                return conv2d(**{k: v for k, v in a.items() if k != "input"}, x=a["input"])
        elif func is torch.conv_transpose2d:
            a = _arguments(CONV_T, args, kwargs)
            if a["input"].dim() == 4 and _covered(a):
                return conv_transpose2d(**{k: v for k, v in a.items() if k != "input"}, x=a["input"])
        elif func is F.linear:
            a = _arguments(LINEAR, args, kwargs)
            if a["input"].dim() >= 1 and _covered(a):
                return linear(a["input"], a["weight"], a.get("bias"))
        return func(*args, **kwargs)


@contextmanager
def portable_kernels(threads: int) -> Iterator[None]:
    """conv2d, conv_transpose2d and linear on OpenBLAS's Haswell kernels, products split by `threads` (see
    PARALLEL_FROM), in this thread."""
    if not pinned():
        raise BenchError("the portable numerics need numpy's OpenBLAS on its Haswell kernels, and numpy was loaded "
                         "before bench could pin them: import bench before numpy")
    saved = _STATE["threads"]
    _STATE["threads"] = threads
    try:
        with PortableKernels():
            yield
    finally:
        _STATE["threads"] = saved


@contextmanager
def counting_flops() -> Iterator[list[int]]:
    """The FLOPs of the products these kernels compute inside it (torch's own FLOP counters see aten ops only)."""
    saved, _STATE["flops"] = _STATE["flops"], [0]
    try:
        yield _STATE["flops"]
    finally:
        _STATE["flops"] = saved


@contextmanager
def aten_kernels() -> Iterator[None]:
    """torch's own kernels inside it, an active portable_kernels or not (`bench check --numerics` hashes both)."""
    saved, _STATE["aten"] = _STATE["aten"], True
    try:
        yield
    finally:
        _STATE["aten"] = saved
