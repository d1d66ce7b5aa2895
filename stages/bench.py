"""DVC stage `bench`: the kernel benchmark -> metrics JSON (`kernels.bench`).

On a CUDA device it times the Triton kernels against cuDNN/eager and torch.compile; without one it writes
the compile report for sm_80/sm_90 (compiled on this CPU) and a roofline model, so `dvc repro` runs anywhere.
"""
from __future__ import annotations

from kernels import bench


def main() -> int:
    """`--out JSON` (and `--no-tf32`) from the command line; all the work is `kernels.bench`'s."""
    return bench.main()


if __name__ == "__main__":
    raise SystemExit(main())
