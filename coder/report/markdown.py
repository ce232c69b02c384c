"""The rapid-insight report as Markdown, with Mermaid mind maps.

Every text that comes from a project (responses, attributes, question and theme names) is
data, never markup. Markdown has no standard escaping function, so this module keeps a
small one, :func:`md_inline`: whitespace (newlines included) collapsed to one space, so a
text cannot end a heading, a table row or a blockquote; control characters shown as U+FFFD;
``< >`` as entities, so no raw HTML reaches a renderer that passes HTML through; and the
characters of inline syntax (``\\ ` * _ [ ] | ~``) backslash-escaped, so a response
cannot make a link, an image, code or emphasis. :func:`md_line` also escapes what would
start a block at the beginning of a line (``#``, ``-``, ``+``, ``=``, ``1.``). Mermaid node
text has its own rules (:func:`mermaid_text`).
"""

from __future__ import annotations

import re

from coder.cells import xml_text
from coder.report.data import QuestionReport, Quote, ReportData, ThemeCount, walk_themes

_SOURCE_NOTE = {
    "reviewed": "",
    "model": " *(model label, not yet reviewed)*",
    "uncoded": " *(not coded)*",
}


def mermaid_text(text: str) -> str:
    """Node text safe inside a Mermaid ``["..."]`` string: one line, no quotes, backticks or
    tags (``< >`` as Mermaid's entity codes ``#lt;``/``#gt;``), no control characters."""
    text = " ".join(xml_text(text).split())
    # Mermaid strings cannot contain a double quote and treat a leading backtick as Markdown;
    # Mermaid draws labels as HTML, so a '<' must not open a tag there either.
    text = text.replace('"', "'").replace("`", "'")
    return text.replace("<", "#lt;").replace(">", "#gt;") or "-"


def mermaid_mindmap(question: QuestionReport, max_depth: int = 3) -> str:
    """A Mermaid ``mindmap`` of a question's themes, with n= on every node."""
    lines = ["mindmap", f'  root(("{mermaid_text(question.title)} [n={question.relevant}]"))']
    counter = 0

    def add(nodes: list[ThemeCount], depth: int) -> None:
        nonlocal counter
        for node in nodes:
            counter += 1
            indent = "  " * (depth + 2)
            lines.append(f'{indent}t{counter}["{mermaid_text(node.label)} [n={node.n}]"]')
            if depth + 1 < max_depth:
                add(node.children, depth + 1)

    add(question.themes, 0)
    if not question.themes:
        lines.append('    none["No themes coded yet"]')
    return "\n".join(lines)


# Inline syntax: code spans, emphasis, links and images, table cells, strikethrough.
_INLINE_SYNTAX = re.compile(r"([\\`*_\[\]|~])")
# '&' only where it would start an entity ('&lt;' typed by a respondent stays as typed).
_ENTITY_START = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
# Text that a Markdown renderer would read as block syntax at the start of a line
# ('>' is already '&gt;'; '*', '_', '`', '~' are escaped everywhere); an ordered-list
# number is escaped at its '.' or ')'.
_BLOCK_START = re.compile(r"^[#+=-]")
_ORDERED_START = re.compile(r"^(\d+)([.)])")


def md_inline(text: str) -> str:
    """User text as inert inline Markdown: one line, no HTML, no links, images, code or
    emphasis of its own, no control characters. A renderer shows exactly the text."""
    text = " ".join(xml_text(text).split())
    text = _INLINE_SYNTAX.sub(r"\\\1", text)
    text = _ENTITY_START.sub("&amp;", text)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def md_line(text: str) -> str:
    """One line of user text, safe at the start of a paragraph, quote or heading:
    :func:`md_inline`, with no leading '#', '>', list or setext marker, and no closing '#'
    run of a heading."""
    text = md_inline(text)
    if _BLOCK_START.match(text):
        text = "\\" + text
    text = _ORDERED_START.sub(r"\1\\\2", text)
    return re.sub(r"(#+)$", r"\\\1", text)


def _cell(text: object) -> str:
    return md_inline(str(text))


def _pct(share: float) -> str:
    return f"{share:.0%}"


def _quote_block(quote: Quote) -> list[str]:
    lines = [f"> {md_line(line)}" if line.strip() else ">" for line in quote.text.splitlines()]
    chosen = "" if quote.flagged else " *(chosen by confidence; no quote flagged yet)*"
    attribution = md_inline(quote.attribution)
    lines += [">", f"> — {attribution}{_SOURCE_NOTE[quote.source]}{chosen}", ""]
    return lines


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(header) for header in headers) + " |"]
    lines.append("|" + "---|" * len(headers))
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines + [""]


def team_rows(report: ReportData) -> list[list[object]]:
    """The coding team's table rows (also the XLSX's): one per reviewer."""
    rows: list[list[object]] = []
    for stats in report.team:
        rows.append([
            stats.reviewer,
            stats.decisions,
            stats.reviewed,
            f"{stats.per_hour:,.0f}" if stats.per_hour is not None else "-",
            _pct(stats.accepted_share) if stats.accepted_share is not None else "-",
            (f"{_pct(stats.overlap_agreement)} of {stats.overlap_coded}"
             if stats.overlap_agreement is not None else "-"),
        ])
    return rows


TEAM_HEADERS = ["Reviewer", "Decisions", "Reviewed", "Per hour", "Accepted unchanged",
                "Agreement on the overlap"]


def _team_section(report: ReportData) -> list[str]:
    """'Coding team': shown when two or more people reviewed (one reviewer has no team)."""
    if len(report.team) < 2:
        return []
    out = ["## Coding team", "",
           "Decisions per reviewer, pace in review sessions, the share of the model's proposals "
           "accepted unchanged, and how often each agrees with their partner on the answers "
           "assigned to two reviewers (same labels; quote flags aside).", ""]
    return out + _table(TEAM_HEADERS, team_rows(report))


def render_markdown(report: ReportData) -> str:
    """The whole report as one Markdown document."""
    summary = report.summary
    out: list[str] = [f"# {md_line(report.title)}", ""]
    version = f" (version {report.codebook_version})" if report.codebook_version else ""
    out.append(f"Codebook: {md_inline(report.codebook_name)}{version}.")
    if report.generated_at:
        out.append(f"Generated {report.generated_at}.")
    out += ["", f"> {report.status.line()}", ""]

    out += ["## Summary statistics", "", summary.sentence, ""]
    rows: list[list[object]] = [
        ["Responses received", summary.responses_received],
        ["People (distinct respondents)", summary.respondents],
        ["Responses analysed (relevant)", summary.relevant],
        ["Responses excluded as not relevant", summary.excluded],
    ]
    if summary.uncoded:
        rows.append(["Responses not yet coded", summary.uncoded])
    if summary.organisations is not None:
        rows.append(["Organisations represented", summary.organisations])
    out += _table(["Statistic", "Value"], rows)
    if summary.excluded_reasons:
        out += ["### Excluded responses, by reason", ""]
        out += _table(["Reason", "n"], [[reason, n] for reason, n in summary.excluded_reasons])
    if summary.by_tag:
        out += ["### Responses by tag", ""]
        out += _table(["Tag", "n"], [[f"#{tag}", n] for tag, n in summary.by_tag])
    for breakdown in summary.breakdowns:
        out += [f"### Responses and people by {md_line(breakdown.kind.replace('_', ' '))}", ""]
        out += _table(
            [breakdown.title.replace("_", " "), "Responses", "People"],
            [[row.value, row.responses, row.people] for row in breakdown.rows],
        )
    if summary.people_note:
        out += [f"*People: {summary.people_note}*", ""]
    out += _team_section(report)

    out += ["## Guide to the mind maps", "", report.mind_map_guide, ""]

    for question in report.questions:
        out += [f"## {md_line(question.title)}", ""]
        if question.text and question.text != question.question_id:
            out += [f"> {md_line(question.text)}", ""]
        out += [f"**Responses:** {question.counts_line}", ""]
        if question.has_stance:
            out += [f"**Does it resonate?** {md_inline(question.resonance)}", ""]
        out += [f"*{question.status.line()}*", ""]
        if question.has_stance:
            out += _table(
                ["Stance", "n", "Share"],
                [[s.label, s.n, _pct(s.share)] for s in question.stance],
            )
        out += ["### Mind map", "", "```mermaid", mermaid_mindmap(question), "```", ""]
        if question.themes:
            out += ["### Themes", ""]
            theme_rows: list[list[object]] = []
            for depth, node in walk_themes(question.themes):
                name = ("↳ " * depth) + node.label
                theme_rows.append([name, node.n, _pct(node.share), f"{node.reviewed}/{node.n}"])
            out += _table(["Theme", "n", "Share", "Reviewed"], theme_rows)
        if question.untagged:
            out += [f"{question.untagged} relevant response(s) have no theme yet.", ""]
        if question.quotes:
            out += ["### Quotes", ""]
            for quote in question.quotes:
                out += _quote_block(quote)
    return "\n".join(out).rstrip() + "\n"
