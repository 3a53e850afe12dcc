"""The decoder and its configuration."""
from gptlab.model.config import ModelConfig
from gptlab.model.gpt import GPT

__all__ = ["GPT", "ModelConfig"]
