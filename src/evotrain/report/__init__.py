"""The campaign report: a data model read from the campaign's files, rendered to one self-contained HTML page."""

from evotrain.report.model import CampaignReport, build_report
from evotrain.report.render import REPORT_FILENAME, render_report, write_report

__all__ = ["REPORT_FILENAME", "CampaignReport", "build_report", "render_report", "write_report"]
