"""Model cards: what a model file says about itself, written when it is trained or exported, shown by
`srcore info`.

A card is a plain JSON-able dict:

    card_version  1
    arch, arch_args, scale, parameters   the generator (srcore.models) and its parameter count
    training      {"recipe": "pretrain" | "gan", "steps": N, "params": {group: {...}}} as the stage ran it
    data          what it was trained on (paths, patch counts, content fingerprints)
    scores        the last validation metrics the training logged (dvclive's summary)
    code          training: {"srcore": package version, "fingerprint": the digest of the stage's import closure
                  (srcore.imports)}, so that the same run gives the same file on any commit; export adds
                  {"git": `git describe --always --dirty` of the checkout or None}
    exported      {"from": source file, "layout": ..., "format": ..., "code": {...}} once exported

It is stored under the key "card" of a checkpoint (srcore.checkpoint.save_generator(card=...)), as the
JSON string "card" of a .safetensors file's metadata, and as the metadata property "srcore.card" of an
ONNX graph (srcore.export). Files without a card (foreign weights, older checkpoints) get one derived
from their tensors, with `derived: true`.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from torch import nn

CARD_VERSION = 1
PACKAGE = "srgan-pipeline"  # the distribution srcore is installed from (pyproject.toml)
ONNX_CARD_KEY = "srcore.card"


def build_card(model: nn.Module, *, recipe: str | None = None, steps: int | None = None,
               params: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
               scores: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card of a generator trained by `recipe` for `steps` with `params` (one entry per params group;
    dataclasses, paths and tuples are turned into JSON values) on `data`, reaching `scores`."""
    card = {"card_version": CARD_VERSION, **describe_model(model), "code": code_version()}
    if recipe is not None:
        card["training"] = {"recipe": recipe, "steps": steps, "params": plain(params or {})}
    for key, value in (("data", data), ("scores", scores)):
        if value is not None:
            card[key] = plain(value)
    return card


def training_card(model: nn.Module, run: dict[str, Any], steps: int, scores: dict[str, Any] | None,
                  sources: dict[str, Any]) -> dict[str, Any]:
    """The card of a generator a training run (srcore.engine.fit) produced: its run identity (recipe, params
    group, scale and seed, runtime numerics, data digests, code fingerprint; srcore.recipes.run_identity)
    laid out as a card, the files it read (`sources`), and the last validation scores."""
    params = {"common": {"seed": run["seed"], "scale": run["scale"]}, "runtime": run["runtime"],
              run["recipe"]: run["settings"]}
    card = build_card(model, recipe=run["recipe"], steps=steps, params=params,
                      data={**sources, **{f"{name}_fingerprint": digest for name, digest in run["data"].items()},
                            **({"init_fingerprint": run["init"]} if "init" in run else {})},
                      scores=scores)
    card["code"] = {"srcore": code_version()["srcore"], "fingerprint": run["code"]}
    return card


def describe_model(model: nn.Module) -> dict[str, Any]:
    return {"arch": model.name, "arch_args": plain(model.arch_args), "scale": model.arch_args["scale"],
            "parameters": sum(p.numel() for p in model.parameters())}


def exported_card(card: dict[str, Any] | None, model: nn.Module, source: str | Path, layout: str, fmt: str
                  ) -> dict[str, Any]:
    """`card` (or one describing `model` when the source had none) with where and how it was exported."""
    base = dict(card) if card else {"card_version": CARD_VERSION, **describe_model(model), "derived": True}
    base["exported"] = {"from": str(source), "layout": layout, "format": fmt, "code": code_version()}
    return base


def plain(value: Any) -> Any:
    """`value` as JSON values: dataclasses and mappings to dicts, tuples to lists, paths to strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"model card: {type(value).__name__} value {value!r} is not a JSON value")


def code_version() -> dict[str, str | None]:
    """srcore's package version and the git revision of the checkout it runs from (None outside git)."""
    try:
        version = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        version = None
    return {"srcore": version, "git": git_revision(Path(__file__).parent)}


def git_revision(folder: Path) -> str | None:
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=folder,
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):  # no git, or a hung file system: the card says unknown
        return None
    revision = done.stdout.strip()
    return revision if done.returncode == 0 and revision else None


def card_to_text(card: dict[str, Any]) -> str:
    return json.dumps(plain(card))  # in the card's own order, which `srcore info` shows


def card_from_text(text: str, source: str) -> dict[str, Any]:
    """A card stored as JSON text in `source`'s metadata; a ValueError naming `source` if it is not one."""
    try:
        card = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{source}: its model card is not valid JSON ({error})") from error
    if not isinstance(card, dict):
        raise ValueError(f"{source}: its model card is a {type(card).__name__}, expected a JSON object")
    return card
