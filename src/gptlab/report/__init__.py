"""Run reports: one self-contained HTML page with plots."""
from gptlab.report.html import write_report

__all__ = ["write_report"]
