"""Test-wide setup.

Triton kernels run on CPU tensors only under the interpreter, and TRITON_INTERPRET must be set before
any kernel module is imported, so it is set here, before test modules load. On a CUDA machine it is left
alone and the kernels run compiled.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
