"""The launch-side rules every kernel file follows (kernels.launch): device guard, alignment, image size."""
import ast
import types
from pathlib import Path

import pytest
import torch

from kernels import conv_block, launch, reference

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KERNEL_FILES = ("conv_block.py", "pixel_shuffle.py", "ragan_loss.py")


def launching_functions(path: Path) -> dict[str, list[str]]:
    """{function name: its decorators' names} for every function with a `kernel[grid](...)` call in it."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef):
            launches = [c for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Subscript)
                        and isinstance(c.func.value, ast.Name) and c.func.value.id.endswith("_kernel")]
            if launches:
                found[node.name] = [d.id for d in node.decorator_list if isinstance(d, ast.Name)]
    return found


@pytest.mark.parametrize("name", KERNEL_FILES)
def test_every_launch_runs_on_its_tensors_device(name):
    """Triton launches on the *current* CUDA device: `runtime.device: cuda:1` launched on GPU 0 until every
    launcher ran under the guard of its first tensor's device."""
    launchers = launching_functions(ROOT / "kernels" / name)
    assert launchers, f"no launch found in {name}"
    unguarded = [f for f, decorators in launchers.items() if "launches_on_input_device" not in decorators]
    assert not unguarded, f"{name}: {unguarded} launch without the device guard"


def test_the_guard_is_the_tensors_cuda_device():
    guard = launch.on_device(types.SimpleNamespace(device=torch.device("cuda", 1)))
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1
    with launch.on_device(torch.zeros(1)):  # CPU tensors (interpreter, recording): no guard needed
        pass


def test_only_misaligned_tensors_are_copied():
    base = torch.randn(2, 3, 9, 9, device=DEVICE)
    assert launch.aligned(base) is base
    crop = base[:, :, 1:, 1:]  # starts 40 bytes in: off the 16-byte boundary
    copy = launch.aligned(crop)
    assert copy.data_ptr() % 16 == 0 and torch.equal(copy, crop)
    cl = base.contiguous(memory_format=torch.channels_last)[:, :, 1:, 1:]
    assert launch.aligned(cl).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("channels_last", [False, True])
def test_a_sliced_input_gives_the_same_result(channels_last):
    x = torch.randn(1, 16, 9, 10, device=DEVICE)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    crop = x[:, :, 1:, 1:]
    weight, bias = torch.randn(8, 16, 3, 3, device=DEVICE) * 0.1, torch.randn(8, device=DEVICE)
    got = conv_block.conv3x3_act(crop, weight, bias, act="relu")
    torch.testing.assert_close(got, reference.conv3x3_act(crop, weight, bias, act="relu"), rtol=1e-5, atol=1e-5)


def test_an_image_over_2_31_elements_is_refused_with_the_remedy():
    big = torch.empty(1, 64, 8192, 4097, device="meta")
    with pytest.raises(ValueError, match=r"one image holds 2148007936 elements .* split it into tiles"):
        launch.check_image_size("conv3x3_act: x", big)
    launch.check_image_size("x", torch.empty(2, 64, 4096, 4100, device="meta"))  # > 2**31 in all: fine


def test_the_packed_weight_follows_every_update():
    """The (3, 3, Cin, Cout) copy is cached per weight version: reused while the weight is unchanged, remade
    after an in-place update (an optimizer step), so a forward never sees stale weights."""
    conv = torch.nn.Conv2d(16, 8, 3, padding=1).to(DEVICE)
    x = torch.randn(1, 16, 5, 5, device=DEVICE)
    first = conv_block.packed_weight(conv.weight, torch.float32)
    assert conv_block.packed_weight(conv.weight, torch.float32) is first
    with torch.no_grad():
        conv.weight.mul_(-1.0)
    assert conv_block.packed_weight(conv.weight, torch.float32) is not first
    torch.testing.assert_close(conv_block.conv3x3_act(x, conv.weight, conv.bias), conv(x), rtol=1e-5, atol=1e-5)
    assert conv_block.packed_weight(conv.weight, torch.bfloat16).dtype == torch.bfloat16
