"""Export a generator: its weights as .safetensors (with what srcore.weights needs to rebuild it), or its
whole forward as an ONNX graph that takes any height and width. Both carry the model card
(srcore.modelcard); both are written atomically, with the permissions of an ordinary file.

The ONNX graph's contract (also in its metadata properties): input "lq" float32 (B, C, H, W), RGB in
[0, 1], H and W >= 2; output "sr" float32 (B, C, sH, sW) on the same [0, 1] scale but NOT clamped: a
model may overshoot slightly, so clamp to [0, 1] before turning it into 8- or 16-bit pixels (srcore
upscale does: round(clamp(sr, 0, 1) * 255)).

ONNX goes through torch.onnx.export's dynamo exporter (torch.export + onnxscript; the `onnx` extra), with
the input's H and W as dynamic dimensions. One part of srcore's generators does not trace at a dynamic
size: the optional MATLAB-bicubic global residual, whose taps srcore.resize.imresize builds from Python
ints. For integer upscaling that resize is a fixed 5-tap polyphase filter over a symmetric-padded input,
which BicubicUp computes with convolutions, so OnnxGenerator computes the same function in exportable ops.
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import nn
import torch.nn.functional as F

from srcore.atomic import atomic_path
from srcore.modelcard import ONNX_CARD_KEY, card_to_text
from srcore.resize import cubic

FORMATS = ("safetensors", "onnx")
ONNX_OPSET = 18
ONNX_CONTRACT = {"srcore.input": "lq: float32 (B, C, H, W), RGB in [0, 1], H and W >= 2",
                 "srcore.output": "sr: float32 (B, C, sH, sW) in [0, 1] up to overshoot: not clamped; "
                                  "clamp to [0, 1] before quantising"}
# torch's ONNX exporter logs "torchvision is not installed. Skipping torchvision::<op>" for each torchvision
# op it knows of, whether or not the graph uses one; srcore's generators use none.
EXPORTER_LOGGER = "torch.onnx._internal.exporter._registration"


def export_safetensors(model: nn.Module, path: str | Path, card: dict[str, Any] | None = None) -> None:
    """model's state dict as .safetensors, with metadata arch (its GENERATORS name), arch_args (JSON) and
    the model card (JSON) when given."""
    metadata = {"arch": model.name, "arch_args": json.dumps(model.arch_args)}
    if card is not None:
        metadata["card"] = card_to_text(card)
    save_weights(model.state_dict(), path, metadata)


def save_weights(weights: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """A flat name -> tensor dict as .safetensors (metadata "format": "pt" plus `metadata`), atomically; the
    same weights and metadata give the same bytes (`canonical_header`)."""
    tensors = {key: value.detach().cpu().contiguous() for key, value in weights.items()}
    blob = canonical_header(save(tensors, metadata={"format": "pt", **(metadata or {})}))
    with atomic_path(path) as temporary:
        Path(temporary).write_bytes(blob)


def canonical_header(blob: bytes) -> bytes:
    """A .safetensors file's bytes with its metadata sorted by key. safetensors writes the metadata map in an
    order that changes from call to call (a Rust HashMap), so the same model gave files that differ."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the format pads its header to a multiple of 8 bytes
    return len(text).to_bytes(8, "little") + text + blob[8 + size:]


class BicubicUp(nn.Module):
    """MATLAB imresize(x, scale, 'bicubic') for an integer scale >= 1, in fixed-size ops.

    x: (B, C, H, W) with H, W >= 2 -> (B, C, scale*H, scale*W). Output pixel i = scale*p + k reads input
    p + (k + 0.5) / scale - 0.5, so phase k has the same 5 taps at p-2..p+2 for every p; beyond the border
    MATLAB mirrors (x1, x0 | x0 .. xn | xn, xn-1).
    """

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale
        phase = (torch.arange(scale, dtype=torch.float64) + 0.5) / scale - 0.5  # (s,)
        taps = cubic(phase[:, None] - torch.arange(-2, 3, dtype=torch.float64))  # (s, 5)
        taps = taps / taps.sum(dim=1, keepdim=True)  # as MATLAB normalises
        self.register_buffer("taps", taps.float().view(scale, 1, 5), persistent=False)

    def upsample_last(self, x: torch.Tensor) -> torch.Tensor:
        """Bicubic x`scale` along the last dim: (N, L) -> (N, scale*L)."""
        padded = torch.cat([x[:, 1:2], x[:, 0:1], x, x[:, -1:], x[:, -2:-1]], dim=1)  # (N, L+4)
        phases = F.conv1d(padded[:, None], self.taps)  # (N, s, L)
        return phases.transpose(1, 2).reshape(x.shape[0], -1)  # (N, L*s): p-major, then phase

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        rows = self.upsample_last(x.reshape(-1, w)).reshape(b, c, h, self.scale * w)
        cols = self.upsample_last(rows.transpose(2, 3).reshape(-1, h))  # (B*C*sW, s*H)
        return cols.reshape(b, c, self.scale * w, self.scale * h).transpose(2, 3)


PRE_UPSAMPLING = ("srcnn", "vdsr")  # networks that run on the bicubic-upscaled image (srcore.lineage)


class OnnxGenerator(nn.Module):
    """The function `model` computes, in ops the ONNX exporter can trace at a dynamic H, W.

    x: (B, in_ch, H, W) in [0, 1] -> (B, out_ch, sH, sW), unclamped as the model's own output. With
    global_residual, the model's copy runs without it and BicubicUp adds the residual; EDSR adds its
    output mean when it has no global residual, which is taken back off.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = copy.deepcopy(model).eval()
        self.residual = bool(getattr(model, "global_residual", False))
        self.inner.global_residual = False
        self.bicubic = BicubicUp(model.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if not self.residual:
            return out
        if self.inner.name == "edsr":
            out = out - self.inner.out_mean
        return out + self.bicubic(x)


def export_onnx(model: nn.Module, path: str | Path, opset: int = ONNX_OPSET, card: dict[str, Any] | None = None
                ) -> None:
    """model as ONNX: input "lq" (B, in_ch, H, W) in [0, 1], output "sr" (B, out_ch, sH, sW), unclamped;
    B, H and W are dynamic (H, W >= 2). The metadata properties hold ONNX_CONTRACT and the card
    (ONNX_CARD_KEY). Needs the `onnx` extra (onnxscript)."""
    if model.name in PRE_UPSAMPLING:
        raise ValueError(f"ONNX export of {model.name} is not supported: it upscales its input with MATLAB "
                         f"bicubic inside the network, which the exporter cannot trace at a dynamic size; "
                         f"export .safetensors instead")
    wrapped = OnnxGenerator(model.cpu()).eval()
    example = torch.rand(2, model.arch_args.get("in_ch", 3), 32, 32)  # batch 2: torch.export specialises a 1
    batch = torch.export.Dim("batch", min=1, max=1024)
    height, width = (torch.export.Dim(name, min=2, max=65536) for name in ("height", "width"))
    with quiet_exporter():
        program = torch.onnx.export(wrapped, (example,), dynamo=True, opset_version=opset, input_names=["lq"],
                                    output_names=["sr"], dynamic_shapes={"x": {0: batch, 2: height, 3: width}},
                                    verbose=False)
    properties = {**ONNX_CONTRACT, **({ONNX_CARD_KEY: card_to_text(card)} if card is not None else {})}
    program.model.metadata_props.update(properties)
    with atomic_path(path) as temporary:
        program.save(str(temporary))


class DropTorchvisionNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("torchvision is not installed")


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Drop the exporter's torchvision notes (see EXPORTER_LOGGER) and torch's FutureWarnings about its own
    internals for the duration; other records and warnings pass."""
    logger, note = logging.getLogger(EXPORTER_LOGGER), DropTorchvisionNotes()
    logger.addFilter(note)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.removeFilter(note)
