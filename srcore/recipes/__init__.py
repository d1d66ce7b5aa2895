"""Recipes: what a training stage trains, each a small module on the one engine (srcore.engine).

A recipe module has a `build(...)` that makes its parts (networks, EMA, optimizers, schedulers, losses) into
an `engine.Recipe` with the run's identity, and one step function with the engine's contract (losses
checked finite before any update, the EMA inside the step). Adding a recipe is adding such a module.

    pretrain   PSNR-oriented training of a generator on a pixel loss
    gan        GAN fine-tuning of a PSNR generator (SRGAN / ESRGAN)
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from srcore.data import PatchBank, TrainingImages
from srcore.runtime import numerics
from srcore.settings import CommonSettings, Runtime


def run_identity(recipe: str, settings: Any, common: CommonSettings, runtime: Runtime, world: int,
                 data: dict[str, str], code: str, **extra: Any) -> dict[str, Any]:
    """What identifies a run (recipe, params, runtime numerics, data and code digests, plus `extra`): a
    checkpoint resumes only an equal one, and srcore.runs keys the run's resumable state by it."""
    return {"recipe": recipe, "settings": asdict(settings), "scale": common.scale, "seed": common.seed,
            "code": code, "runtime": numerics(runtime, world), "data": data, **extra}


def data_digests(train: TrainingImages, val: PatchBank) -> dict[str, str]:
    """The `data` of a run identity: the content digests of the training images and validation tiles, as
    prepare stored them (srcore.imagefile)."""
    return {"train": train.digest, "val": val.digest}
