"""Kernel tests compare against references in IEEE fp32."""
import pytest
import torch


@pytest.fixture(autouse=True)
def ieee_fp32():
    """On CUDA, fp32 convs and tl.dot would otherwise use TF32 (cuDNN and Triton alike, differently
    rounded); IEEE keeps the fp32 tolerances the same on CPU and GPU. Set through the fp32_precision API,
    which torch 2.13 reads consistently whichever API the user set TF32 with."""
    old = torch.backends.cudnn.conv.fp32_precision
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    yield
    torch.backends.cudnn.conv.fp32_precision = old
