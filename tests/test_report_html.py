"""The self-contained HTML report: no network needed, content present, renders in Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from coder.report import build_report
from coder.report.html import render_html
from coder.store import Store
from schemas import Labels, Response
from tests.report_project import project  # noqa: F401  (fixture)


def test_html_is_self_contained(project: Store) -> None:  # noqa: F811
    html = render_html(build_report(project))
    assert "<script" not in html.lower()
    # Every src/href is inline data or a page anchor: nothing to fetch.
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert url.startswith(("data:", "#")), url
    assert html.count('src="data:image/png;base64,') == 4  # theme + stance chart per question


def test_html_shows_mind_map_quotes_and_status(project: Store) -> None:  # noqa: F811
    html = render_html(build_report(project))
    assert 'System working<span class="n">[n=2]</span>' in html
    assert 'Primary and secondary care<span class="n">[n=1]</span>' in html
    assert "— Representative from a health innovation network, HI Wessex" in html
    assert html.count("Review status:") == 3
    assert "Local needs &amp; communities" in html


def test_response_text_is_escaped(project: Store) -> None:  # noqa: F811
    project.add_responses(
        [
            Response(
                id="x1",
                question="H1",
                text="<script>alert(1)</script> pathways",
                attributes={"role": "<b>Innovator</b>"},
            )
        ]
    )
    project.add_decision(
        response_id="x1",
        reviewer="alice",
        action="correct",
        labels=Labels(question="H1", stance="resonates", themes=["funding"], quote=True),
    )
    html = render_html(build_report(project), with_charts=False)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;Innovator&lt;/b&gt;" in html


def _chromium() -> str | None:
    return (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )


@pytest.mark.slow
def test_html_renders_in_headless_chromium(project: Store, tmp_path: Path) -> None:  # noqa: F811
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (CI: apt-get install -y chromium)")
    page = tmp_path / "report.html"
    page.write_text(render_html(build_report(project)), encoding="utf-8")
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "H1: Pathways" in dom and "H2: Policy levers" in dom
    assert "[n=3]" in dom and "Given the way the system works" in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1000,2000", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank image
