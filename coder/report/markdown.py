"""The rapid-insight report as Markdown, with Mermaid mind maps."""

from __future__ import annotations

import re

from coder.report.model import QuestionReport, Quote, ReportData, ThemeCount, walk_themes

_SOURCE_NOTE = {
    "reviewed": "",
    "model": " *(model label, not yet reviewed)*",
    "uncoded": " *(not coded)*",
}


def mermaid_text(text: str) -> str:
    """Node text safe inside a Mermaid ``["..."]`` string (no quotes, backticks or newlines)."""
    text = re.sub(r"\s+", " ", text).strip()
    # Mermaid strings cannot contain a double quote and treat a leading backtick as Markdown.
    return text.replace('"', "'").replace("`", "'") or "-"


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


def _no_html(text: str) -> str:
    # Markdown renderers pass raw HTML through: user text must not become a tag.
    return text.replace("<", "&lt;").replace(">", "&gt;")


# Text that a Markdown renderer would read as block syntax at the start of a line
# ('>' is already '&gt;'); an ordered-list number is escaped at its '.' or ')'.
_BLOCK_START = re.compile(r"^[#+*=_`~-]")
_ORDERED_START = re.compile(r"^(\d+)([.)])")


def md_line(text: str) -> str:
    """One line of user text, safe in a paragraph, quote or heading: no HTML, no newline,
    no leading '#', '>', list or fence marker, no closing '#' run of a heading."""
    text = _no_html(" ".join(text.split()))
    if _BLOCK_START.match(text):
        text = "\\" + text
    text = _ORDERED_START.sub(r"\1\\\2", text)
    return re.sub(r"(#+)$", r"\\\1", text)


def _cell(text: object) -> str:
    return _no_html(str(text)).replace("|", "\\|").replace("\n", " ")


def _pct(share: float) -> str:
    return f"{share:.0%}"


def _quote_block(quote: Quote) -> list[str]:
    lines = [f"> {md_line(line)}" if line.strip() else ">" for line in quote.text.splitlines()]
    chosen = "" if quote.flagged else " *(chosen by confidence; no quote flagged yet)*"
    attribution = md_line(quote.attribution)
    lines += [">", f"> — {attribution}{_SOURCE_NOTE[quote.source]}{chosen}", ""]
    return lines


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(report: ReportData) -> str:
    """The whole report as one Markdown document."""
    summary = report.summary
    out: list[str] = [f"# {md_line(report.title)}", ""]
    version = f" (version {report.codebook_version})" if report.codebook_version else ""
    out.append(f"Codebook: {_no_html(' '.join(report.codebook_name.split()))}{version}.")
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

    out += ["## Guide to the mind maps", "", report.mind_map_guide, ""]

    for question in report.questions:
        out += [f"## {md_line(question.title)}", ""]
        if question.text and question.text != question.question_id:
            out += [f"> {md_line(question.text)}", ""]
        out += [f"**Responses:** {question.counts_line}", ""]
        if question.has_stance:
            out += [f"**Does it resonate?** {_no_html(question.resonance)}", ""]
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
