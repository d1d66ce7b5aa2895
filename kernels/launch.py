"""What every kernel file shares: the activation helpers (device code) and the launch-side rules.

Launch-side rules, each the fix of a defect a GPU would have shown:
- `on_device(t)`: Triton launches on the *current* CUDA device, so every launcher runs under the guard
  of its tensors' device (`runtime.device: cuda:1` must not launch on GPU 0).
- `aligned(t)`: a view that starts off a 16-byte boundary (a slice at an odd offset) loses every
  `tt.divisibility` hint and compiles to a variant that spills (the compile report shows it); it is
  copied once, to a fresh allocation, instead.
- `tf32_enabled()`: read through `torch.backends.cudnn.conv.fp32_precision`, which torch 2.13 resolves
  for both the legacy `allow_tf32` flags and the new `fp32_precision` API; reading the legacy flag
  raises once a user has set the new one.
- activations propagate NaN as PyTorch's do: ReLU is a NaN-propagating max (a plain `tl.maximum` is
  maxnum on a GPU, which turns NaN into 0 and would hide a diverged step from the divergence guard).
"""
from __future__ import annotations

import contextlib
import functools
import math
from contextvars import ContextVar
from typing import Callable, ContextManager, Iterator

import torch
import triton
import triton.language as tl

ACT_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2, "prelu": 3}
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
ALIGN_BYTES = 16  # what Triton's tt.divisibility hint (16) and 16-byte async copies need
_RECORDING: ContextVar[bool] = ContextVar("kernels_recording_launches", default=False)


@triton.jit
def act_forward(z, alpha, negative_slope, ACT: tl.constexpr):
    """act(z) for ACT in ACT_CODES; alpha broadcasts against z (PReLU). NaN stays NaN, as in PyTorch."""
    y = z
    if ACT == 1:
        y = tl.maximum(z, 0.0, propagate_nan=tl.PropagateNan.ALL)
    elif ACT == 2:
        y = tl.where(z > 0, z, z * negative_slope)
    elif ACT == 3:
        y = tl.where(z > 0, z, z * alpha)
    return y


@triton.jit
def act_derivative(z, alpha, negative_slope, ACT: tl.constexpr):
    """d act / dz as PyTorch's backward computes it: the negative side at z == 0; at z = NaN the positive
    side for ReLU and PReLU (threshold_backward passes the gradient where not z <= 0), the negative side
    for leaky ReLU (its backward tests z > 0)."""
    d = tl.full(z.shape, 1.0, tl.float32)
    if ACT == 1:
        d = tl.where(z <= 0, 0.0, 1.0)
    elif ACT == 2:
        d = tl.where(z > 0, 1.0, negative_slope)
    elif ACT == 3:
        d = tl.where(z <= 0, alpha, 1.0)
    return d


@triton.jit
def pixel_offsets(p, H, W, stride_b, stride_h, stride_w):
    """Element offsets (int64) of flat pixel indices p in [0, B*H*W) of a (B, C, H, W) tensor, channel 0."""
    hw = p % (H * W)
    return (p // (H * W)).to(tl.int64) * stride_b + (hw // W) * stride_h + (hw % W) * stride_w


INTERPRETED = not isinstance(act_forward, triton.runtime.JITFunction)  # fixed when triton.jit ran


def recording() -> bool:
    """True inside `kernels.capture.record_launches`: CPU tensors may reach the launchers (nothing runs)."""
    return _RECORDING.get()


@contextlib.contextmanager
def recording_scope() -> Iterator[None]:
    """Marks launches as recorded, not run (`kernels.capture` sets the JIT up for it)."""
    token = _RECORDING.set(True)
    try:
        yield
    finally:
        _RECORDING.reset(token)


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last when x is laid out so (and not also plain contiguous), else contiguous."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def autocast_dtype(t: torch.Tensor) -> torch.dtype | None:
    """The dtype torch.autocast casts conv and prelu inputs to on t's device; None outside autocast."""
    kind = t.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


def check_device(name: str, t: torch.Tensor) -> None:
    """Triton needs a CUDA tensor, or the interpreter for CPU tensors (or launches only being recorded)."""
    if t.device.type != "cuda" and not INTERPRETED and not recording():
        raise ValueError(f"{name} is on {t.device}: the Triton kernels need CUDA tensors, or TRITON_INTERPRET=1 "
                         "set before `kernels` is imported to run CPU tensors interpreted (tests/conftest.py does)")


def check_image_size(name: str, t: torch.Tensor) -> None:
    """Kernels index within one image in int32 (batch offsets are int64): C*H*W must stay below 2**31."""
    per_image = math.prod(t.shape[1:])
    if per_image >= 2**31:
        raise ValueError(f"{name}: one image holds {per_image} elements (shape {tuple(t.shape)}), over the 2**31 "
                         "the kernels index per image; split it into tiles (srcore upscale --tile) or use "
                         "backend 'torch'")


def on_device(t: torch.Tensor) -> ContextManager:
    """The guard that makes t's CUDA device current for a launch; a no-op for CPU tensors."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def launches_on_input_device(launcher: Callable) -> Callable:
    """Decorator for a function that launches kernels: run it on the device of its first (tensor) argument."""
    @functools.wraps(launcher)
    def guarded(first: torch.Tensor, *args, **kwargs):
        with on_device(first):
            return launcher(first, *args, **kwargs)

    return guarded


def aligned(t: torch.Tensor | None) -> torch.Tensor | None:
    """t, or a copy of it (in the layout its strides suggest) when its data does not start on a 16-byte
    boundary."""
    if t is None or t.data_ptr() % ALIGN_BYTES == 0:
        return t
    return t.clone(memory_format=torch.preserve_format)


def tf32_enabled() -> bool:
    """Whether PyTorch's own fp32 convs may use TF32: cuDNN conv's resolved fp32 precision ("tf32" when set
    so through either API, "ieee" or "none" otherwise)."""
    return torch.backends.cudnn.conv.fp32_precision == "tf32"


def dot_config(dtype: torch.dtype) -> tuple[bool, str]:
    """(upcast tiles to fp32, tl.dot input_precision): the interpreter's tl.dot needs fp32 tiles; on CUDA
    fp32 runs as TF32 exactly when cuDNN convs may."""
    if INTERPRETED:
        return True, "ieee"
    return False, "tf32" if dtype == torch.float32 and tf32_enabled() else "ieee"
