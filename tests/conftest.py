import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)  # tiny tensors: one thread is fastest and never oversubscribes


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
