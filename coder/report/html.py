"""The rapid-insight report as one self-contained HTML file (no scripts, no network)."""

from __future__ import annotations

from typing import Any

import jinja2
import markupsafe

from coder.cells import xml_text
from coder.report import charts
from coder.report.data import ReportData


def _visible(value: Any) -> Any:
    # Control characters are invalid in HTML text; shown as U+FFFD, as in the other formats.
    # Markup (a macro's output) was built from values that went through here already.
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return xml_text(value)
    return value


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("coder.report", "templates"),
        # Response text is user data: always escaped (markupsafe, through Jinja).
        autoescape=True,
        finalize=_visible,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render_html(report: ReportData, with_charts: bool = True) -> str:
    """Render the report; charts are base64 PNGs inside the page."""
    chart_images = [
        {
            "themes": charts.theme_chart(question) if with_charts else None,
            "stance": charts.stance_chart(question)
            if with_charts and question.has_stance
            else None,
        }
        for question in report.questions
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(report=report, s=report.summary, charts=chart_images)
