"""Device tests: TF32 off, so a GPU value is compared with the CPU at float32 precision.

PyTorch lets cuDNN convolutions use TF32 by default (inputs rounded to 10 mantissa bits); that is a
speed setting, not something rxlit's code does, and it would hide a device bug inside ~1e-3 noise.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def full_float32_on_gpus():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
