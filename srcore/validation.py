"""Validation during training: PSNR on the held-out patches by the protocol, and a sample image for the logs."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from srcore.data import PatchBank
from srcore.metrics import psnr, rgb_to_y
from srcore.plots import crop_strip
from srcore.resize import imresize
from srcore.runtime import to_device
from srcore.settings import Runtime


@torch.no_grad()
def validate(model: nn.Module, bank: PatchBank, scale: int, runtime: Runtime, batch_size: int = 8) -> float:
    """Mean PSNR (Y, crop = scale, uint8 SR) over the validation patches, computed in fp32."""
    model.eval()
    scores = []
    for start in range(0, len(bank), batch_size):
        lq = to_device(bank.lq[start:start + batch_size].float() / 255, runtime)
        sr = model(lq).float().clamp(0, 1).mul(255).round().cpu().permute(0, 2, 3, 1).double().numpy()
        hr = bank.hr[start:start + batch_size].permute(0, 2, 3, 1).double().numpy()
        scores += [psnr(rgb_to_y(s), rgb_to_y(h), crop=scale) for s, h in zip(sr, hr)]
    model.train()
    return float(np.mean(scores))


@torch.no_grad()
def validation_sample(model: nn.Module, bank: PatchBank, scale: int, runtime: Runtime):
    """bicubic | model | HR of the first validation patch, as a labelled PIL image for the logs."""
    model.eval()
    lq = bank.lq[:1].double() / 255  # (1, 3, p, p)
    sr = model(to_device(lq.float(), runtime)).float().clamp(0, 1).cpu()[0]
    model.train()
    panels = [("bicubic", imresize(lq, float(scale), uint8=True)[0]), ("model (EMA)", sr),
              ("HR", bank.hr[0].double() / 255)]
    side = bank.hr.shape[-1]
    return crop_strip(panels, (0, 0, side), zoom=1)


def log_validation(live, step: int, model: nn.Module, val: PatchBank, scale: int, runtime: Runtime, bar) -> None:
    """Validation PSNR of `model` (printed, and logged with a sample image when `live` is given)."""
    val_psnr = validate(model, val, scale, runtime)
    bar.write(f"step {step}: validation PSNR (EMA) {val_psnr:.3f} dB")
    if live is not None:
        live.step = step
        live.log_metric("val/psnr", val_psnr)
        live.log_image("val/sample.png", validation_sample(model, val, scale, runtime))
        live.make_summary()
