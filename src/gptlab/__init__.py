"""gptlab: pretrain GPT-style language models the way the successful GPT-3 reproductions did."""
from gptlab.api import load_model

__version__ = "0.1.0"
__all__ = ["load_model", "__version__"]
