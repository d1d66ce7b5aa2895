"""A training data source that mixes scales: one srcore.data.TrainingImages per scale, each batch drawn from
one of them.

The engine asks a data source for `batches(start, stop, size, augment, part)` and the run identity for its
`digest`; MixedScales answers with the sources in turn (step k: the k-th scale of the cycle, k mod the number
of scales), so every scale gets the same number of steps and batch k stays a pure function of (seed, k)
for exact resumes. The scale travels in the shapes (hr is s x lq): the pretrain recipe reads it with
srcore.multiscale.batch_scale and runs a multi-scale model (MDSR, VDSR) at it.

One scale per batch is how EDSR-PyTorch trains MDSR (a random scale per batch; a fixed cycle here). VDSR's
paper mixes scales inside a batch; a pre-upsampling network sees the same pixels either way, only the
grouping of its gradient steps differs.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

from srcore.data import Batch, TrainingImages, open_training_images
from srcore.multiscale import check_scales


class MixedScales:
    """sources: scale -> TrainingImages of that scale's LQ/HR pairs (e.g. the same images at each scale)."""

    def __init__(self, sources: dict[int, TrainingImages]):
        if not sources:
            raise ValueError("MixedScales needs the training images of at least one scale, got none")
        for scale, images in sources.items():
            if images.scale != scale:
                raise ValueError(f"MixedScales: the images given for x{scale} are x{images.scale} pairs")
        self.sources = dict(sorted(sources.items()))
        self.scales = tuple(self.sources)
        digest = hashlib.sha256()
        for scale, images in self.sources.items():
            digest.update(f"x{scale}:{images.digest};".encode())
        self.digest = digest.hexdigest()  # a run on other data, or other scales, does not resume

    def describe(self) -> str:
        first = next(iter(self.sources.values()))
        return f"x{', x'.join(map(str, self.scales))} in turn, each {first.describe()}"

    def scale_of(self, step: int) -> int:
        """The scale of batch `step`."""
        return self.scales[step % len(self.scales)]

    def batch(self, step: int, size: int, augment: bool, part: tuple[int, int] = (0, 1)) -> Batch:
        """(lq, hr) of scale s = scale_of(step): float32 in [0, 1], (B, 3, p/s, p/s) and (B, 3, p, p), p the
        crop side of that scale's images; see TrainingImages.batch for `part` and the flips."""
        return self.sources[self.scale_of(step)].batch(step, size, augment, part)

    def batches(self, start: int, stop: int, size: int, augment: bool, part: tuple[int, int] = (0, 1)
                ) -> Iterator[Batch]:
        """batch(k) for k in [start, stop), in order, made in this process."""
        for step in range(start, stop):
            yield self.batch(step, size, augment, part)


def open_scales(path, scale: int, scales: tuple[int, ...] | None, patch_size: int, seed: int, source: str,
                workers: int, copies: int = 1) -> TrainingImages | MixedScales:
    """A training stage's data: the images of a `prepare` file at `scale`, or for a multi-scale generator
    (arch_args `scales`) at every scale it has, in turn. Each scale needs its LR in the file
    (prepare.more_scales); the HR is held once per scale by the memory source."""
    chosen = check_scales(scale, scales, "the generator")
    sources = {s: open_training_images(path, s, patch_size, seed, source, workers, copies * len(chosen))
               for s in chosen}
    return sources[scale] if len(sources) == 1 else MixedScales(sources)
