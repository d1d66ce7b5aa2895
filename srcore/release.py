"""The models srcore ships: the default pipeline's PSNR and GAN generators, as small .safetensors files.

The `release` stage (stages/release.py) writes them from `models/psnr.pt` and `models/gan.pt` into
`srcore/assets/models/`, which git tracks (DVC does not cache them), so a fresh clone or an installed
package can upscale before any training: `srcore upscale photo.jpg -o out/ --model srcore:psnr`. Each file
carries its model card (srcore.modelcard: recipe, params, data digests, code fingerprint) and the benchmark
scores `evaluate` measured for it. `dvc repro` rewrites them whenever the models or the scores change, and
`dvc status` says when the committed ones are not the pipeline's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from srcore.checkpoint import rebuild_generator
from srcore.export import export_safetensors
from srcore.weights import read_spec

SHIPPED = Path(__file__).parent / "assets" / "models"
PREFIX = "srcore:"  # --model srcore:NAME names a shipped model


def shipped_names() -> list[str]:
    return sorted(path.stem for path in SHIPPED.glob("*.safetensors"))


def model_path(name: str | Path) -> Path:
    """The file --model names: `srcore:NAME` is the shipped model NAME, anything else a path. A shipped name
    that does not exist is a ValueError listing those that do."""
    text = str(name)
    if not text.startswith(PREFIX):
        return Path(name)
    path = SHIPPED / f"{text[len(PREFIX):]}.safetensors"
    if not path.is_file():
        known = ", ".join(PREFIX + stem for stem in shipped_names()) or "none (run the pipeline's release stage)"
        raise ValueError(f"{text}: no such shipped model; shipped: {known}")
    return path


def benchmark_scores(evaluation: dict[str, Any], model: str) -> dict[str, Any]:
    """`model`'s entry in each benchmark set of an `evaluate` result (metrics/eval.json), by set name."""
    found = {name: entry[model] for name, entry in evaluation.items() if isinstance(entry, dict) and model in entry}
    if not found:
        raise ValueError(f"the evaluation scores no model named {model!r}")
    return found


def release_model(checkpoint: Path, out: Path, scores: dict[str, Any], scale: int) -> None:
    """`checkpoint`'s EMA generator as .safetensors at `out`, its card extended with `scores` (per benchmark
    set, at x`scale`). Nothing in the file depends on the checkout or the time: the same model and scores
    give the same bytes."""
    spec = read_spec(checkpoint, "ema")
    model = rebuild_generator(spec.arch, spec.arch_args, spec.weights, f"{checkpoint} ({spec.layout} weights)")
    card = dict(spec.card or {})
    card["benchmarks"] = {"scale": scale, "protocol": "PSNR/SSIM on Y, border = scale; NIQE on RGB", **scores}
    export_safetensors(model, out, card)
