"""Interop with Hugging Face transformers: one adapter per architecture, proven by logits parity."""
from gptlab.interop.errors import ExportRefused
from gptlab.interop.hf import export_hf, from_hf_model, import_hf, to_hf_model

__all__ = ["ExportRefused", "export_hf", "import_hf", "to_hf_model", "from_hf_model"]
