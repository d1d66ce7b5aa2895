"""The schema of every `params.yaml` group: one frozen dataclass per group, with no defaults of its own.

`params.yaml` is the one place a number lives: a key missing from it is an error naming the key (see
`srcore.config.from_dict`), never a silent fallback to a different default written here. Stage scripts read
one group each at the edge (`params_group(params, PretrainSettings, "pretrain")`) and hand plain values to the
library. Checks that need a network class (generator_args, discriminator_args) live where the network is
built, in the recipes, so that this module imports nothing but the standard library.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


def require_positive(group: str, settings: object, *names: str) -> None:
    for name in names:
        if not getattr(settings, name) > 0:
            raise ValueError(f"{group}.{name} must be > 0, got {getattr(settings, name)}")


def require_multiple_of_scale(group: str, settings: object, scale: int, *names: str) -> None:
    """Sizes in HR pixels must give whole LR pixels at `scale` (common.scale)."""
    for name in names:
        if getattr(settings, name) % scale:
            raise ValueError(f"{group}.{name}={getattr(settings, name)} is not divisible by common.scale={scale}; "
                             f"expected a multiple of {scale} (LR patches of a whole number of pixels)")


def require_decay(group: str, decay: float) -> None:
    if not 0 <= decay < 1:
        raise ValueError(f"{group}.ema_decay must be in [0, 1), got {decay}")


@dataclass(frozen=True)
class CommonSettings:
    """The `common` group, read by every stage."""
    seed: int
    scale: Literal[2, 3, 4]


@dataclass(frozen=True)
class Runtime:
    """The `runtime` group: where and how training computes (scores are always computed in fp32)."""
    device: str                          # cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "bf16"]  # autocast dtype of training; auto: see srcore.runtime
    channels_last: bool
    kernels: Literal["auto", "triton", "torch"]
    threads: int                         # torch intra-op threads; 0 keeps torch's default
    keep_freed_memory: bool              # CPU: glibc keeps freed memory for reuse (srcore.memory)
    # How dvc.yaml starts the training stages (its ${runtime.launcher} template): "python", or e.g.
    # "torchrun --standalone --nproc_per_node=2". The library never reads it.
    launcher: str
    # Where training batches are cropped from (srcore.data): every image in memory, or read crop by crop from
    # the HDF5 file by `loader_workers` processes; auto: memory when the file fits in half the available memory.
    # The batches are the same either way, so a run resumes across a change of source.
    data_source: Literal["auto", "memory", "lazy"]
    loader_workers: int

    def __post_init__(self):
        require_positive("runtime", self, "loader_workers")


@dataclass(frozen=True)
class DataSettings:
    """The `data` group: where the images are. dvc.yaml passes these paths to the stages (and declares them as
    dependencies) through its templating; the library never reads this group."""
    train: str      # a folder of training images, subfolders included
    benchmark: str  # a folder of benchmark sets, one folder each


@dataclass(frozen=True)
class PrepareSettings:
    """The `prepare` group; sizes in HR pixels. Training images are stored whole (training crops them)."""
    val_images: int       # whole images held out of the training folders for validation
    val_patch_size: int   # validation tiles, cut on a non-overlapping grid
    workers: int          # processes reading and resizing images; the files are the same for any count
    more_scales: tuple[int, ...]  # training images' LR at these scales too, for multi-scale models (VDSR, MDSR)

    def __post_init__(self):
        require_positive("prepare", self, "val_images", "val_patch_size", "workers")

    def check_scale(self, scale: int) -> None:
        require_multiple_of_scale("prepare", self, scale, "val_patch_size")
        if any(s < 2 or s == scale for s in self.more_scales) or len(set(self.more_scales)) < len(self.more_scales):
            raise ValueError(f"prepare.more_scales must be distinct scales >= 2 other than common.scale={scale}, "
                             f"got {list(self.more_scales)}")


@dataclass(frozen=True)
class PretrainSettings:
    """The `pretrain` group: PSNR-oriented training of a generator."""
    generator: Literal["srresnet", "edsr", "rrdb", "srcnn", "vdsr", "mdsr"]
    # constructor arguments, checked by the recipe (lists: e.g. MDSR's scales, SRCNN's kernel sizes)
    generator_args: dict[str, int | float | bool | str | tuple[int, ...]]
    loss: Literal["l1", "mse"]                     # on Y for a Y-channel model (colour: y), as SRCNN and VDSR
    lr: float                                      # learning rate
    optimizer: Literal["adam", "sgd"]              # adam: Adam(0.9, 0.99); sgd: SGD with the two keys below
    sgd_momentum: float
    sgd_weight_decay: float
    clip: Literal["none", "norm", "value"]         # VDSR's adjustable gradient clipping to clip_theta / lr
    clip_theta: float                              # (lr: the current learning rate); see recipes.pretrain
    schedule: Literal["cosine", "multistep", "constant"]
    milestones: tuple[int, ...]                    # multistep: steps at which the learning rate *= gamma
    gamma: float
    steps: int
    batch_size: int
    patch_size: int                                # HR side of the random crops trained on
    ema_decay: float
    augment: bool
    log_every: int
    val_every: int
    ckpt_every: int
    extend: bool                                   # start from an earlier run that had fewer steps

    def __post_init__(self):
        require_positive("pretrain", self, "lr", "steps", "batch_size", "patch_size", "log_every", "val_every",
                         "ckpt_every", "gamma", "clip_theta")
        require_decay("pretrain", self.ema_decay)
        if not 0 <= self.sgd_momentum < 1:
            raise ValueError(f"pretrain.sgd_momentum must be in [0, 1), got {self.sgd_momentum}")
        if not self.sgd_weight_decay >= 0:
            raise ValueError(f"pretrain.sgd_weight_decay must be >= 0, got {self.sgd_weight_decay}")

    def check_scale(self, scale: int) -> None:
        require_multiple_of_scale("pretrain", self, scale, "patch_size")


@dataclass(frozen=True)
class GanSettings:
    """The `gan` group: GAN fine-tuning of the PSNR model."""
    steps: int
    batch_size: int
    patch_size: int                                # HR side of the random crops trained on
    lr_g: float                                    # learning rates of G and D
    lr_d: float
    schedule: Literal["cosine", "multistep", "constant"]
    milestones: tuple[int, ...]
    gamma: float
    pixel_loss: Literal["l1", "mse"]
    pixel_weight: float
    perceptual: Literal["feature_matching", "vgg", "none"]
    perceptual_weight: float
    vgg_layers: dict[str, float]
    vgg_weights: str                               # a local torchvision VGG19 state dict (perceptual: vgg)
    adversarial: Literal["ragan", "vanilla"]
    adversarial_weight: float
    discriminator_args: dict[str, int | bool]      # srcore.discriminator.VGGDiscriminator, checked by the recipe
    ema_decay: float
    augment: bool
    log_every: int
    val_every: int
    ckpt_every: int
    extend: bool                                   # start from an earlier run that had fewer steps

    def __post_init__(self):
        require_positive("gan", self, "steps", "batch_size", "patch_size", "lr_g", "lr_d", "log_every", "val_every",
                         "ckpt_every", "gamma")
        for name in ("pixel_weight", "perceptual_weight", "adversarial_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"gan.{name} must be >= 0, got {getattr(self, name)}")
        require_decay("gan", self.ema_decay)
        if self.perceptual == "vgg" and not self.vgg_weights:
            raise ValueError("gan.perceptual is 'vgg' but gan.vgg_weights names no file (nothing is downloaded); "
                             "give a local torchvision VGG19 state dict or use perceptual: feature_matching")

    def check_scale(self, scale: int) -> None:
        require_multiple_of_scale("gan", self, scale, "patch_size")


@dataclass(frozen=True)
class InterpolateSettings:
    """The `interpolate` group: one blended model per alpha (checked by srcore.interpolate.alpha_filenames)."""
    alphas: tuple[float, ...]


@dataclass(frozen=True)
class EvaluateSettings:
    """The `evaluate` group."""
    datasets: tuple[str, ...]  # folders of the benchmark folder
    rgb: bool                  # score PSNR/SSIM on RGB instead of MATLAB's Y
    niqe: bool
    self_ensemble: bool        # also score each model with the x8 self-ensemble, as "<name>+"
    crop_size: int             # side of the side-by-side crops, in HR pixels

    def __post_init__(self):
        require_positive("evaluate", self, "crop_size")
