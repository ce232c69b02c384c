"""Issue 15, item 3 (and the report part of item 8): hostile project text in the report.

Responses, respondent attributes, and question, theme and codebook names (a codebook is
received from colleagues too) carry HTML, Markdown links and images, newlines that would
end a heading, a blockquote or a table row, Mermaid syntax and control characters. The
report is rendered by a real CommonMark renderer with raw HTML *on* (the setting under
which 5 of 6 payloads ran), and the HTML report is parsed: no payload becomes markup.
"""

from __future__ import annotations

import html.parser
import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from coder.report import build_report, write_report
from coder.report.html import render_html
from coder.report.markdown import md_inline, md_line, mermaid_mindmap, mermaid_text, render_markdown
from coder.store import Store
from schemas import Codebook, Labels, Question, Response, Theme

markdown_it = pytest.importorskip("markdown_it")

PAYLOADS = [
    "<script>alert(1)</script> funding matters",
    "<img src=x onerror=alert(2)> funding matters",
    "[click me](javascript:alert(3)) funding matters",
    "![tracker](http://example.invalid/pixel.png) funding matters",
    "<!-- hidden --> funding matters <iframe src=http://example.invalid>",
    "funding matters\n\n# Injected heading\n\n<details open>raw</details>",
    "funding matters\r---\r**bold** `code` ~~strike~~ | a | table |",
    "funding\x1b[31m red \x1b]0;title\x07 matters\x0b\x0c\x00 end",
]
# Each question name and text tries to leave its heading or blockquote.
EVIL_SHORT_NAME = "Pathways\n# Injected heading\n<script>alert(4)</script>"
EVIL_TEXT = "Whole pathway approach\n\n<img src=x onerror=alert(5)>\n> not a quote\n[x](http://e.invalid)"
EVIL_THEME = 'Funding"] \n  evil(("<b>boss</b>"))\n```\n<script>alert(6)</script>'

CODEBOOK = Codebook(
    name="Ecosystem <script>alert(7)</script>\n# Heading",
    questions=[Question(id="H1", short_name=EVIL_SHORT_NAME, text=EVIL_TEXT)],
    themes=[Theme(id="funding", label=EVIL_THEME, definition='Money "><script>x</script>')],
)


@pytest.fixture
def hostile(tmp_path: Path) -> Store:
    store = Store(tmp_path / "hostile.db")
    store.save_codebook(CODEBOOK)
    store.add_responses(
        Response(
            id=f"evil{index}",
            text=text,
            question="H1",
            respondent=f"p{index}",
            attributes={
                "role": "<b>Boss</b>\n# role heading",
                "organisation": "[Org](javascript:alert(8))",
            },
        )
        for index, text in enumerate(PAYLOADS)
    )
    for index in range(len(PAYLOADS)):
        store.add_decision(
            response_id=f"evil{index}",
            reviewer="alice",
            action="correct",
            labels=Labels(question="H1", stance="resonates", themes=["funding"], quote=True),
        )
    return store


class _Tags(html.parser.HTMLParser):
    """Every start tag and href/src in an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [value or "" for name, value in attrs if name in ("href", "src")]


def _tags(document: str) -> _Tags:
    parser = _Tags()
    parser.feed(document)
    return parser


def test_rendered_markdown_has_no_markup_from_the_project(hostile: Store) -> None:
    report = build_report(hostile, max_quotes=len(PAYLOADS))
    markdown = render_markdown(report)
    # Raw HTML on: the most permissive common setting.
    rendered = markdown_it.MarkdownIt("commonmark", {"html": True}).render(markdown)
    found = _tags(rendered)
    assert not {"script", "img", "iframe", "details", "a", "b", "del"} & set(found.tags), found.tags
    assert found.links == []
    # The only code is the report's own Mermaid blocks ('**Responses:**' is its own bold).
    assert set(re.findall(r"<code[^>]*>", rendered)) == {'<code class="language-mermaid">'}
    # Headings are only the report's own: title, sections, the question, its sub-sections.
    headings = re.findall(r"<h(\d)>(.*?)</h\1>", rendered)
    # The question's name stays inside its own heading, as text.
    assert "H1: Pathways # Injected heading &lt;script&gt;alert(4)&lt;/script&gt;" in [
        text for level, text in headings if level == "2"
    ]
    assert not [text for _, text in headings if text.startswith(("Injected", "role heading"))]
    h1 = [text for level, text in headings if level == "1"]
    assert len(h1) == 1 and "Ecosystem" in h1[0]
    # The question's text stays inside its one blockquote, on one line.
    question_quote = re.search(r"<blockquote>\s*<p>Whole pathway approach(.*?)</p>", rendered, re.S)
    assert question_quote is not None and "\n" not in question_quote.group(1)
    # Every quote is shown in full, as text.
    assert rendered.count("funding matters") >= 6
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    # No control character reaches the file (a terminal would run an ESC sequence).
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", markdown)


def test_mermaid_mind_map_stays_one_node_per_line(hostile: Store) -> None:
    question = build_report(hostile).questions[0]
    lines = mermaid_mindmap(question).splitlines()
    assert lines[0] == "mindmap"
    # root, one theme: nothing the labels carried became a node or ended the code fence.
    assert len(lines) == 3, lines
    for line in lines[1:]:
        assert re.fullmatch(r'\s+\w+(\(\(|\[)"[^"`<>\n]*"(\)\)|\])', line), line
    assert "#lt;script#gt;" in lines[2]


def test_escape_functions() -> None:
    assert md_inline("a\nb\r\nc\u2028d") == "a b c d"
    assert md_inline("[x](y) *b* _i_ `c` ~s~ a|b \\") == (
        "\\[x\\](y) \\*b\\* \\_i\\_ \\`c\\` \\~s\\~ a\\|b \\\\"
    )
    assert md_inline("<b>&amp; R&D") == "&lt;b&gt;&amp;amp; R&D"
    assert md_line("# h") == "\\# h" and md_line("1. x") == "1\\. x"
    assert md_line("---") == "\\---" and md_line("= x") == "\\= x"
    assert md_line("x ##") == "x \\##"
    assert md_inline("a\x1bb") == "a\ufffdb"
    assert mermaid_text('<b>"x"</b>\n`y`') == "#lt;b#gt;'x'#lt;/b#gt; 'y'"


def test_html_report_escapes_everything(hostile: Store) -> None:
    page = render_html(build_report(hostile, max_quotes=len(PAYLOADS)), with_charts=False)
    found = _tags(page)
    assert not {"script", "img", "iframe", "details", "a"} & set(found.tags)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;Boss&lt;/b&gt;" in page
    # The theme's definition sits in a title attribute: its quote cannot close it.
    assert 'title="Money &#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in page
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", page)


def test_all_report_formats_write_with_control_characters(hostile: Store, tmp_path: Path) -> None:
    # openpyxl refused ESC and \x0b (IllegalCharacterError): the report crashed.
    _, paths = write_report(hostile, tmp_path / "out", ["md", "html", "xlsx"])
    workbook = load_workbook(paths[2])
    texts = [
        cell.value
        for sheet in workbook.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if isinstance(cell.value, str)
    ]
    escaped = [text for text in texts if text.startswith("funding\ufffd[31m red")]
    assert escaped, "the ESC of the response is shown as U+FFFD"
    assert not any(re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", text) for text in texts)
