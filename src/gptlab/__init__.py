"""gptlab: pretrain GPT-style language models the way the successful GPT-3 reproductions did."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> Any:
    # Every `import gptlab.<stage>` runs this file first, so it stays light: the model and
    # checkpoint code load on first use of `gptlab.load_model`, not when `gptlab.data` is imported.
    if name == "load_model":
        from gptlab.api import load_model  # noqa: PLC0415  (lazy: keeps `import gptlab.data` free of the model code)
        return load_model
    raise AttributeError(f"module 'gptlab' has no attribute {name!r}")
