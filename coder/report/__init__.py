"""The rapid-insight report: data (model.py) and its renderings (Markdown, HTML, XLSX)."""

from coder.report.model import ReportData, build_report, collect_coded

__all__ = ["ReportData", "build_report", "collect_coded"]
