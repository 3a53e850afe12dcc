"""Tiny models run faster on one thread, and do not thrash when the cores are shared."""
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")          # interop tests never reach the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
