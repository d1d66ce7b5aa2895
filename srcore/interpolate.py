"""ESRGAN network interpolation: θ = (1 − α)·θ_PSNR + α·θ_GAN, one self-describing checkpoint per α.

Wang et al. (ESRGAN, 2018, sec. 3.4) blend a PSNR-oriented generator with its GAN fine-tuned copy weight by
weight, trading fidelity (α = 0) for perceptual sharpness (α = 1) without retraining. The two networks must
be the same architecture with the same constructor arguments, so every tensor has a partner of equal shape.

Output files are named `alpha_{α:.2f}.pt` (alpha_0.00.pt, alpha_0.20.pt, alpha_0.25.pt, alpha_1.00.pt); two
alphas that round to the same name are an error. Each file holds arch, arch_args, model (the blended
weights) and `interpolation: {"alpha", "psnr", "gan"}` with the exact α and both source paths.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from srcore.checkpoint import generator_weights, load_checkpoint, save_checkpoint, state_dict_mismatch


def check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:  # NaN fails too
        raise ValueError(f"interpolation alpha must be in [0, 1] (0: PSNR weights, 1: GAN weights), got {alpha!r}")
    return alpha


def weights_mismatch(psnr: dict[str, torch.Tensor], gan: dict[str, torch.Tensor]) -> str | None:
    """What keeps two state dicts from being blended (missing/extra keys, a shape), or None."""
    return state_dict_mismatch(psnr, gan, "PSNR", "GAN")


def interpolate_weights(psnr_state: dict[str, torch.Tensor], gan_state: dict[str, torch.Tensor],
                        alpha: float) -> dict[str, torch.Tensor]:
    """(1 − alpha)·psnr + alpha·gan for every tensor; alpha in [0, 1], so 0 and 1 give the inputs exactly.

    Floating tensors are blended in float64 and cast back (to the wider dtype if the two differ).
    Non-floating tensors (BatchNorm's num_batches_tracked) are counters, not weights: the GAN model's
    value is kept, as the fine-tuned run continued counting from the PSNR one.
    """
    check_alpha(alpha)
    mismatch = weights_mismatch(psnr_state, gan_state)
    if mismatch:
        raise ValueError(f"cannot interpolate: {mismatch}")
    out = {}
    for key, a in psnr_state.items():
        b = gan_state[key]
        if a.is_floating_point() and b.is_floating_point():
            # (1-α)a + αb rather than lerp: exact at α = 0 and α = 1.
            mixed = (1.0 - alpha) * a.double() + alpha * b.double()
            out[key] = mixed.to(torch.promote_types(a.dtype, b.dtype))
        else:
            out[key] = b.clone()
    return out


def shown(args: dict[str, Any], key: str) -> str:
    return repr(args[key]) if key in args else "absent"


def checkpoints_mismatch(psnr: dict[str, Any], gan: dict[str, Any]) -> str | None:
    """What keeps two generator checkpoints from being blended, or None."""
    if psnr["arch"] != gan["arch"]:
        return f"arch differs: {psnr['arch']!r} vs {gan['arch']!r}"
    a, b = psnr["arch_args"], gan["arch_args"]
    if a != b:
        differing = [k for k in sorted(set(a) | set(b)) if k not in a or k not in b or a[k] != b[k]]
        diffs = [f"{k}: {shown(a, k)} vs {shown(b, k)}" for k in differing]
        return f"arch_args differ (PSNR vs GAN): {'; '.join(diffs)}"
    return weights_mismatch(generator_weights(psnr), generator_weights(gan))


def alpha_filenames(alphas: list[float], where: str = "interpolation alphas") -> list[str]:
    """`alpha_{α:.2f}.pt` per alpha, checked: at least one, each in [0, 1], no two sharing a name. Errors
    start with `where` (the params key the alphas came from)."""
    try:
        return checked_filenames(alphas)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def checked_filenames(alphas: list[float]) -> list[str]:
    if not alphas:
        raise ValueError("expected at least one alpha in [0, 1], got none")
    names: dict[str, float] = {}
    for alpha in alphas:
        name = f"alpha_{check_alpha(alpha):.2f}.pt"
        if name in names:
            raise ValueError(f"alphas {names[name]!r} and {alpha!r} both give the file {name}; "
                             f"alphas must differ at two decimals")
        names[name] = alpha
    return list(names)


def interpolated_models(folder: Path) -> dict[str, Path]:
    """The models interpolate_checkpoints wrote into `folder`, named "alpha=<a>", in order of alpha."""
    return {f"alpha={path.stem.removeprefix('alpha_')}": path for path in sorted(Path(folder).glob("alpha_*.pt"))}


def interpolate_checkpoints(psnr_path: str | Path, gan_path: str | Path, alphas: list[float],
                            out_dir: str | Path, where: str = "interpolation alphas") -> list[Path]:
    """Write `out_dir/alpha_{α:.2f}.pt` per alpha, blending the generator weights of the two checkpoints.

    Uses each checkpoint's EMA weights when present (as `srcore.weights.load_generator` does). Refuses with a
    ValueError naming both files when arch, arch_args, weight keys or a weight shape differ. Other
    alpha_*.pt files in out_dir, left by runs with other alphas, are removed. Returns the paths written.
    """
    names = alpha_filenames(alphas, where)
    psnr, gan = load_checkpoint(psnr_path), load_checkpoint(gan_path)
    mismatch = checkpoints_mismatch(psnr, gan)
    if mismatch:
        raise ValueError(f"cannot interpolate {psnr_path} (PSNR) with {gan_path} (GAN): {mismatch}")
    psnr_weights, gan_weights = generator_weights(psnr), generator_weights(gan)
    out_dir = Path(out_dir)
    written = []
    for alpha, name in zip(alphas, names):
        state = {"arch": psnr["arch"], "arch_args": psnr["arch_args"],
                 "model": interpolate_weights(psnr_weights, gan_weights, alpha),
                 "interpolation": {"alpha": float(alpha), "psnr": str(psnr_path), "gan": str(gan_path)}}
        save_checkpoint(out_dir / name, state)
        written.append(out_dir / name)
    # DVC owns the whole folder as one output: files from earlier alphas would otherwise linger in it.
    # Temporary files are left only by a hard kill: .alpha_*.pt.<hex>.tmp (srcore.atomic), alpha_*.pt.tmp (older).
    leftovers = [*out_dir.glob(".alpha_*.pt.*.tmp"), *out_dir.glob("alpha_*.pt.tmp")]
    for stale in [*out_dir.glob("alpha_*.pt"), *leftovers]:
        if stale not in written:
            stale.unlink()
    return written
