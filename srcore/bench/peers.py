"""srcore's training steps against BasicSR 1.4.2's, on the same networks, in one process (`make bench-peers`).

Two steps, each timed interleaved (BasicSR, srcore, BasicSR, ...) on the same random batch:
- pixel: BasicSR's `SRModel.optimize_parameters` (L1) against srcore's pretrain step;
- esrgan: BasicSR's `ESRGANModel.optimize_parameters` (L1 x 1e-2 + VGG19 conv5_4 perceptual + relativistic GAN x
  5e-3, ESRGAN's recipe) against srcore's GAN step with the same terms (`gan.perceptual: vgg`).
Both sides train srcore's generator and discriminator (registered in BasicSR's ARCH_REGISTRY) and read the same
VGG19 weights (random, written to a temporary file: nothing is downloaded), so the ratio measures the step and its
runtime, not the networks (RRDBNet against BasicSR's own: docs/performance.md). BasicSR runs as its users run it
on a CPU: fp32, NCHW, eager. srcore runs params.yaml's runtime, as the pipeline does.

BasicSR is not a dependency. To run this, install it beside srcore (`pip install basicsr==1.4.2 torchvision`);
BasicSR 1.4.2 imports a torchvision module that newer torchvision renamed, which `import_basicsr` aliases.

    python -m srcore.bench.peers --params params.yaml --out metrics/bench_peers.json [--repeats N]
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import types
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from srcore import memory
from srcore.bench.common import count_flops, environment, format_table, interleaved, summary, write_json
from srcore.config import load_params, params_group
from srcore.discriminator import build_discriminator
from srcore.models import build_generator
from srcore.recipes import gan, pretrain
from srcore.runtime import resolve_precision, to_device
from srcore.settings import CommonSettings, GanSettings, PretrainSettings, Runtime

GENERATORS = {  # name -> (srcore generator, its arguments): the RRDBNet and the pipeline's EDSR
    "rrdb-32x6": ("rrdb", dict(num_feat=32, num_block=6, num_grow_ch=16)),
    "edsr-default": ("edsr", dict(num_feat=32, num_block=16, global_residual=True)),
}
DISCRIMINATOR = dict(num_feat=64)  # ESRGAN's width; srcore's VGG-style D (pooled to 4x4, dense 1024)
VGG_FILE = "experiments/pretrained_models/vgg19-dcbb9e9d.pth"  # where BasicSR looks, relative to the cwd


def import_basicsr() -> types.ModuleType:
    """basicsr, importable beside a current torchvision: 1.4.2 imports `torchvision.transforms.functional_tensor`,
    renamed `_functional_tensor` in torchvision 0.17. A torchvision whose compiled ops do not match the installed
    torch fails on import; BasicSR's training steps use none of those ops, so their registration is skipped.
    Without BasicSR or torchvision: SystemExit saying what to install."""
    try:
        try:
            import torchvision  # noqa: F401
        except RuntimeError as error:  # "operator torchvision::nms does not exist"
            if "torchvision::" not in str(error):
                raise
            for name in [n for n in sys.modules if n.startswith("torchvision")]:
                del sys.modules[name]
            sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        sys.modules.setdefault("torchvision.transforms.functional_tensor",
                               importlib.import_module("torchvision.transforms._functional_tensor"))
        return importlib.import_module("basicsr")
    except ImportError as error:
        raise SystemExit(f"bench-peers compares with BasicSR, which is not installed here ({error}); "
                         "install it beside srcore: pip install basicsr==1.4.2 torchvision")


def register_srcore_networks(registry) -> None:
    """srcore's generators and discriminator under names BasicSR's `network_g` / `network_d` options can give."""
    for name, (arch, _) in GENERATORS.items():
        if f"srcore-{name}" not in registry:
            registry._do_register(f"srcore-{name}",
                                  lambda _arch=arch, **kw: build_generator(_arch, scale=4, kernels="torch", **kw))
    if "srcore-vgg-d" not in registry:
        registry._do_register("srcore-vgg-d", lambda **kw: build_discriminator("vgg", **kw))


@contextmanager
def cwd(path: Path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def basicsr_options(step: str, generator: str) -> dict[str, Any]:
    """BasicSR's options for SRModel (step "pixel") or ESRGANModel ("esrgan"), as its ESRGAN config sets them."""
    adam = {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]}
    train = {"ema_decay": 0.999, "optim_g": dict(adam), "scheduler": {"type": "MultiStepLR", "milestones": [10**6],
                                                                  "gamma": 0.5},
             "total_iter": 10**6, "warmup_iter": -1}
    if step == "pixel":
        train["pixel_opt"] = {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"}
    else:
        train.update(optim_d=dict(adam), net_d_iters=1, net_d_init_iters=0,
                     pixel_opt={"type": "L1Loss", "loss_weight": 1e-2, "reduction": "mean"},
                     perceptual_opt={"type": "PerceptualLoss", "layer_weights": {"conv5_4": 1}, "vgg_type": "vgg19",
                                     "use_input_norm": True, "range_norm": False, "perceptual_weight": 1.0,
                                     "style_weight": 0, "criterion": "l1"},
                     gan_opt={"type": "GANLoss", "gan_type": "vanilla", "real_label_val": 1.0,
                              "fake_label_val": 0.0, "loss_weight": 5e-3})
    options = {"name": "bench", "model_type": "SRModel" if step == "pixel" else "ESRGANModel", "scale": 4,
               "num_gpu": 0, "is_train": True, "dist": False, "rank": 0, "world_size": 1,
               "network_g": {"type": f"srcore-{generator}", **GENERATORS[generator][1]},
               "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
               "train": train}
    if step == "esrgan":
        options["network_d"] = {"type": "srcore-vgg-d", **DISCRIMINATOR}
        options["path"]["pretrain_network_d"] = None
    return options


def random_batch(batch: int, lr_size: int, runtime: Runtime | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The same (lq, hr) for both sides, in [0, 1]; on srcore's memory format when a runtime is given."""
    gen = torch.Generator().manual_seed(0)
    lq = torch.rand(batch, 3, lr_size, lr_size, generator=gen)
    hr = torch.rand(batch, 3, 4 * lr_size, 4 * lr_size, generator=gen)
    return (lq, hr) if runtime is None else (to_device(lq, runtime), to_device(hr, runtime))


def basicsr_step(step: str, generator: str, batch: int, lr_size: int, workdir: Path) -> Callable[[], object]:
    from basicsr.models import build_model

    torch.manual_seed(0)
    with cwd(workdir):  # BasicSR's VGG19 loads VGG_FILE from the working directory
        model = build_model(basicsr_options(step, generator))
    lq, hr = random_batch(batch, lr_size, None)
    model.feed_data({"lq": lq, "gt": hr})
    iteration = iter(range(1, 10**9))
    return lambda: model.optimize_parameters(next(iteration))


def srcore_step(step: str, generator: str, batch: int, lr_size: int, params: dict[str, Any],
                vgg_file: Path) -> Callable[[], object]:
    torch.manual_seed(0)
    runtime = params_group(params, Runtime, "runtime")
    runtime = replace(runtime, device="cpu", kernels="torch", precision=resolve_precision(runtime.precision, "cpu")[0])
    common = CommonSettings(seed=0, scale=4)
    arch, args = GENERATORS[generator]
    if step == "pixel":
        settings = replace(params_group(params, PretrainSettings, "pretrain"), generator=arch, generator_args=args,
                           batch_size=batch, loss="l1")
        recipe = pretrain.build(settings, common, runtime, data={}, code="bench")
    else:
        settings = replace(params_group(params, GanSettings, "gan"), batch_size=batch, perceptual="vgg",
                           vgg_weights=str(vgg_file), vgg_layers={"conv5_4": 1.0}, perceptual_weight=1.0,
                           pixel_loss="l1", pixel_weight=1e-2, adversarial="ragan", adversarial_weight=5e-3,
                           discriminator_args=DISCRIMINATOR)
        recipe = gan.build(settings, common, runtime, data={}, generator=build_generator(arch, scale=4, kernels="torch",
                                                                                     **args),
                           init_digest="", code="bench")
    lq, hr = random_batch(batch, lr_size, runtime)
    return lambda: recipe.step(recipe.state, lq, hr)


def write_vgg19(workdir: Path) -> Path:
    """Random VGG19 weights as torchvision's whole state dict: BasicSR loads it into torchvision's vgg19 (strictly,
    classifier included); srcore's loader reads its `features.*` keys and names any that are missing."""
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.vgg19().state_dict()
    path = workdir / VGG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def run(generators: list[str], steps: list[str], batch: int, lr_size: int, repeats: int,
        params: dict[str, Any]) -> list[dict]:
    basicsr = import_basicsr()
    from basicsr.utils.registry import ARCH_REGISTRY

    register_srcore_networks(ARCH_REGISTRY)
    runtime = params_group(params, Runtime, "runtime")
    keep = runtime.keep_freed_memory
    precision, why = resolve_precision(runtime.precision, "cpu")
    print(f"srcore: params.yaml's runtime: precision {runtime.precision} -> {precision} ({why}), channels_last "
          f"{runtime.channels_last}, keep_freed_memory {keep}; BasicSR: fp32, NCHW, glibc's allocator defaults")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        vgg_file = write_vgg19(workdir)
        for generator in generators:
            for step in steps:
                calls = {"basicsr": basicsr_step(step, generator, batch, lr_size, workdir),
                         "srcore": srcore_step(step, generator, batch, lr_size, params, vgg_file)}
                flops = {name: count_flops(call) for name, call in calls.items()}
                for call in calls.values():  # warm-up: oneDNN primitives, the allocator
                    call()
                    call()
                # BasicSR's turns run on glibc's defaults, srcore's with its runtime's allocator setting.
                times = interleaved(calls, repeats, before=lambda name: memory.keep_freed_memory(
                    keep and name == "srcore"))
                memory.keep_freed_memory(False)
                med = {name: summary(times[name])["median_ms"] for name in calls}
                rows.append({"generator": generator, "step": step, "batch": batch, "lr_size": lr_size,
                             "basicsr_ms": med["basicsr"], "srcore_ms": med["srcore"],
                             "speedup": round(med["basicsr"] / med["srcore"], 2),
                             "basicsr_gflop": round(flops["basicsr"] / 1e9, 1),
                             "srcore_gflop": round(flops["srcore"] / 1e9, 1),
                             "times": {name: summary(times[name]) for name in calls}})
    for row in rows:
        row["basicsr_version"] = basicsr.__version__
    return rows


COLUMNS = [("generator", "generator"), ("step", "step"), ("batch", "B"), ("basicsr_ms", "BasicSR ms"),
           ("srcore_ms", "srcore ms"), ("speedup", "speed-up"), ("basicsr_gflop", "BasicSR GFLOP"),
           ("srcore_gflop", "srcore GFLOP")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, required=True, help="params.yaml: srcore's runtime and recipes")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--generators", nargs="+", choices=list(GENERATORS), default=["rrdb-32x6"])
    parser.add_argument("--steps", nargs="+", choices=["pixel", "esrgan"], default=["pixel", "esrgan"])
    parser.add_argument("--batch", type=int, default=16, help="LR patches per batch (default 16)")
    parser.add_argument("--lr-size", type=int, default=24, help="LR patch side (x4: HR 4x; default 24)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per side (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 timed steps per side")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 2
    start = environment()
    rows = run(args.generators, args.steps, args.batch, args.lr_size, args.repeats, load_params(args.params))
    write_json(args.out, {"steps": rows}, start)
    print(format_table(rows, COLUMNS))
    print("speed-up: BasicSR's median step time over srcore's; FLOPs: convolutions and matmuls of one step")


if __name__ == "__main__":
    main()
