"""Kernel tests compare against references in IEEE fp32."""
import pytest
import torch


@pytest.fixture(autouse=True)
def ieee_fp32():
    """On CUDA, fp32 convs and tl.dot would otherwise use TF32 (cuDNN and Triton alike, differently
    rounded); IEEE keeps the fp32 tolerances the same on CPU and GPU."""
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = old
