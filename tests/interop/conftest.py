import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")          # interop tests never reach the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield
