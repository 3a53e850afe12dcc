"""The one error interop raises for a model it will not convert."""
from gptlab.schema import ConfigError


class ExportRefused(ConfigError):
    """A configuration no Hugging Face architecture represents exactly, phrased as one line."""
