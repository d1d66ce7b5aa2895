"""Training losses: the pixel loss, VGG19 perceptual, discriminator feature matching, and the adversarial terms.

Nothing here downloads anything: the perceptual loss
reads a local torchvision-format VGG19 state dict, and `feature_matching_loss` needs no pretrained weights
at all (it compares the discriminator's own features), which makes it the default offline perceptual term.

Adversarial losses take raw logits from the discriminator. Detaching is the caller's job, as in
SRGAN/ESRGAN's training step:
    D step: real = D(hr), fake = D(G(lq).detach())  -> discriminator_loss(kind, real, fake)
    G step: real = D(hr).detach(), fake = D(G(lq))  -> generator_loss(kind, real, fake)
so the D loss never reaches G's weights, and RaGAN's G loss (which also reads D(real)) does not push D.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from srcore import ops
from srcore.files import safe_load

# VGG19's `features` in torchvision's layout: ints are 3x3 convs (each followed by a ReLU), "M" a 2x2 max
# pool, so that torchvision's state-dict keys ("features.<index>.weight") load as they are.
VGG19_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                512, 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _MeanAbsoluteError(torch.autograd.Function):
    """F.l1_loss (mean reduction) with a backward that keeps the input's memory format.

    F.l1_loss's backward spreads the mean's gradient into a new NCHW tensor. On channels_last activations every
    op after it in the backward (a LeakyReLU's backward, a gradient sum, a conv's backward) then mixes the two
    layouts, which on CPU takes a strided path ~6-20x slower than either layout alone. Here the gradient is
    sgn(x - y) * (g / N), the same numbers as autograd's (g / N, then times sgn(x - y)) in x - y's layout.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        diff = x - y
        ctx.save_for_backward(diff)
        return diff.abs().mean()  # what F.l1_loss computes

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        (diff,) = ctx.saved_tensors
        grad_x = diff.sgn() * (grad / diff.numel())
        return (grad_x if ctx.needs_input_grad[0] else None), (-grad_x if ctx.needs_input_grad[1] else None)


def l1_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean |x - y|, a scalar: F.l1_loss's value and gradients bit for bit, the gradients in x's memory format."""
    return _MeanAbsoluteError.apply(x, y)


class _MeanSquaredError(torch.autograd.Function):
    """F.mse_loss (mean reduction) with a backward that keeps the input's memory format (see _MeanAbsoluteError):
    ATen's (2 / N) * (x - y) * g, the factor in x's dtype, in x - y's layout."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        diff = x - y
        ctx.save_for_backward(diff)
        return (diff * diff).mean()  # what F.mse_loss computes

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        (diff,) = ctx.saved_tensors
        grad_x = diff.new_tensor(2.0 / diff.numel()) * diff * grad
        return (grad_x if ctx.needs_input_grad[0] else None), (-grad_x if ctx.needs_input_grad[1] else None)


def mse_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean (x - y)^2, a scalar: F.mse_loss's value and gradients bit for bit, the gradients in x's memory format."""
    return _MeanSquaredError.apply(x, y)


CRITERIA = {"l1": l1_loss, "mse": mse_loss}


def pixel_loss(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The pixel loss between SR and HR: "l1" (EDSR, ESRGAN) or "mse" (SRResNet)."""
    if kind not in CRITERIA:
        raise ValueError(f"unknown pixel loss {kind!r}; valid: {', '.join(CRITERIA)}")
    return CRITERIA[kind]


def vgg19_features() -> nn.Sequential:
    """torchvision's vgg19().features (37 modules, randomly initialised): (B, 3, H, W) -> (B, 512, H/32, W/32)."""
    layers, in_ch = [], 3
    for item in VGG19_CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            # Not in place (torchvision's is): a tapped conv output must survive its ReLU.
            layers += [nn.Conv2d(in_ch, item, 3, padding=1), nn.ReLU()]
            in_ch = item
    return nn.Sequential(*layers)


def vgg19_conv_indices() -> dict[str, int]:
    """ESRGAN's layer names -> index of that conv in vgg19_features(): conv1_1 -> 0, ..., conv5_4 -> 34."""
    names, index, block, conv = {}, 0, 1, 1
    for item in VGG19_CONFIG:
        if item == "M":
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            index, conv = index + 2, conv + 1  # conv + its ReLU
    return names


VGG19_LAYERS = vgg19_conv_indices()


def load_vgg19_features(path: str | Path) -> nn.Sequential:
    """vgg19_features() with weights from a local torchvision VGG19 state dict at `path`.

    The file holds `features.<i>.weight/bias` (and may hold `classifier.*`, which is ignored), as
    `torch.save(torchvision.models.vgg19(...).state_dict(), path)` writes it. Errors name the file.
    """
    path = Path(path)
    state = safe_load(path, "VGG19 weights")  # a local file: nothing is downloaded
    if not isinstance(state, dict):
        raise ValueError(f"VGG19 weights {path} hold a {type(state).__name__}, not a state dict")
    features = vgg19_features()
    expected = features.state_dict()
    got = {key.removeprefix("features."): value for key, value in state.items()
           if key.startswith("features.")}
    unexpected = sorted(key for key in state if not key.startswith(("features.", "classifier.")))
    unexpected += sorted(f"features.{key}" for key in got if key not in expected)
    missing = sorted(f"features.{key}" for key in expected if key not in got)
    if missing or unexpected:
        raise ValueError(f"VGG19 weights {path} are not a torchvision vgg19 state dict: "
                         f"missing {missing[:4]}, unexpected {unexpected[:4]}")
    wrong = [f"features.{key} {tuple(getattr(got[key], 'shape', ()))} (want {tuple(value.shape)})"
             for key, value in expected.items()
             if not isinstance(got[key], torch.Tensor) or got[key].shape != value.shape]
    if wrong:
        raise ValueError(f"VGG19 weights {path} have wrong shapes: {', '.join(wrong[:4])}")
    features.load_state_dict(got)
    return features


class VGGPerceptualLoss(nn.Module):
    """ESRGAN's perceptual loss: sum over layers of weight * criterion(VGG19(sr), VGG19(hr)).

    Features are taken *before* the ReLU (ESRGAN's choice: post-ReLU features of deep layers are
    sparse, weakening supervision), on ImageNet-normalised input. VGG19 is frozen and truncated after
    the deepest requested layer. layer_weights: e.g. {"conv5_4": 1.0}; names from VGG19_LAYERS.
    """

    def __init__(self, layer_weights: dict[str, float], weights_path: str | Path, criterion: str = "l1"):
        super().__init__()
        if not layer_weights:
            raise ValueError("perceptual loss needs at least one layer in layer_weights, got none")
        unknown = [name for name in layer_weights if name not in VGG19_LAYERS]
        if unknown:
            raise ValueError(f"unknown VGG19 layer(s) {', '.join(map(repr, unknown))}; "
                             f"valid: {', '.join(VGG19_LAYERS)}")
        if criterion not in CRITERIA:
            raise ValueError(f"unknown perceptual criterion {criterion!r}; valid: {', '.join(CRITERIA)}")
        self.layer_weights, self.criterion = dict(layer_weights), CRITERIA[criterion]
        self.taps = {VGG19_LAYERS[name]: name for name in layer_weights}  # conv index -> layer name
        # Nothing past the deepest tap is needed, not even its ReLU.
        self.vgg = load_vgg19_features(weights_path)[: max(self.taps) + 1]
        self.vgg.requires_grad_(False).eval()  # no dropout or BN inside: eval mode is only for clarity
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, H, W) in [0, 1] -> {layer name: (B, C, h, w) pre-ReLU conv output}."""
        feat, out = (x - self.mean) / self.std, {}
        for index, layer in enumerate(self.vgg):
            feat = layer(feat)
            if index in self.taps:
                out[self.taps[index]] = feat
        return out

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """sr, hr: (B, 3, H, W) in [0, 1] -> scalar. Gradient flows into sr only; hr is a fixed target."""
        sr_feats = self.features(sr)
        with torch.no_grad():
            hr_feats = self.features(hr)
        return sum(weight * self.criterion(sr_feats[name].float(), hr_feats[name].float())  # the sum in fp32
                   for name, weight in self.layer_weights.items())


def feature_matching_loss(real_features: list[torch.Tensor], fake_features: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of L1(fake_i, real_i.detach()), a scalar; the features come from
    `VGGDiscriminator(..., return_features=True)` on hr (real) and sr (fake), each (B, C_i, H_i, W_i).

    Real features are targets and are detached here. The loss still reaches D's weights through the
    fake features; only G's optimizer should step on it.
    """
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError(f"feature matching needs as many real as fake feature maps (> 0), "
                         f"got {len(real_features)} and {len(fake_features)}")
    for i, (real, fake) in enumerate(zip(real_features, fake_features)):
        if real.shape != fake.shape:
            raise ValueError(f"feature map {i}: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ")
    losses = [l1_loss(fake, real.detach()) for real, fake in zip(real_features, fake_features)]
    return torch.stack(losses).mean()


def vanilla_loss(real_logits: torch.Tensor | None, fake_logits: torch.Tensor, target: str, *,
                 backend: str = "torch") -> torch.Tensor:
    """SRGAN's GAN loss, a scalar. target='d': 1/2 [BCE(real, 1) + BCE(fake, 0)]; target='g': BCE(fake, 1).

    The G loss does not read real_logits (it may be None). There is no kernel: backend is only checked.
    real_logits, fake_logits: (B,) raw logits.
    """
    ops.check_backend(backend)
    if target not in ("d", "g"):
        raise ValueError(f"GAN loss target must be 'd' or 'g', got {target!r}")
    bce = F.binary_cross_entropy_with_logits
    if target == "g":
        return bce(fake_logits, torch.ones_like(fake_logits))
    return 0.5 * (bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits)))


def ragan_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, target: str, *,
               backend: str = "torch") -> torch.Tensor:
    """ESRGAN's relativistic average GAN loss, a scalar, through `srcore.ops.ragan_loss` (formulas there).

    Both targets read both logits: real_logits (B,) and fake_logits (B,) are required.
    """
    if real_logits is None:
        raise ValueError("the ragan GAN loss needs real_logits for both D and G, got None")
    return ops.ragan_loss(real_logits, fake_logits, target, backend=backend)


ADVERSARIAL = {"vanilla": vanilla_loss, "ragan": ragan_loss}


def adversarial_loss(kind: str):
    """ADVERSARIAL[kind]; an unknown kind is a ValueError listing the valid ones."""
    if kind not in ADVERSARIAL:
        raise ValueError(f"unknown adversarial loss {kind!r}; valid: {', '.join(ADVERSARIAL)}")
    return ADVERSARIAL[kind]


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       backend: str = "torch") -> torch.Tensor:
    """D's loss, a scalar. real_logits = D(hr), fake_logits = D(G(lq).detach()): (B,) raw logits."""
    return adversarial_loss(kind)(real_logits, fake_logits, "d", backend=backend)


def generator_loss(kind: str, real_logits: torch.Tensor | None, fake_logits: torch.Tensor,
                   backend: str = "torch") -> torch.Tensor:
    """G's loss, a scalar. real_logits = D(hr).detach() (None allowed for vanilla), fake_logits = D(G(lq))."""
    return adversarial_loss(kind)(real_logits, fake_logits, "g", backend=backend)
