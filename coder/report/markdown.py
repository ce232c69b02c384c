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


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _pct(share: float) -> str:
    return f"{share:.0%}"


def _quote_block(quote: Quote) -> list[str]:
    lines = [f"> {line}" if line else ">" for line in quote.text.splitlines()]
    chosen = "" if quote.flagged else " *(chosen by confidence; no quote flagged yet)*"
    lines += [">", f"> — {quote.attribution}{_SOURCE_NOTE[quote.source]}{chosen}", ""]
    return lines


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(report: ReportData) -> str:
    """The whole report as one Markdown document."""
    summary = report.summary
    out: list[str] = [f"# {report.title}", ""]
    version = f" (version {report.codebook_version})" if report.codebook_version else ""
    out.append(f"Codebook: {report.codebook_name}{version}.")
    if report.generated_at:
        out.append(f"Generated {report.generated_at}.")
    out += ["", f"> {report.status.line()}", ""]

    out += ["## Summary statistics", ""]
    rows: list[list[object]] = [
        ["Responses received", summary.responses_received],
        ["Respondents", summary.respondents or "not recorded"],
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
    out += [f"### Responses by {summary.attribution_field.replace('_', ' ')}", ""]
    out += _table(
        [summary.attribution_field.replace("_", " ").capitalize(), "n"],
        [[value, n] for value, n in summary.by_attribution],
    )

    out += [
        "## Guide to the mind maps",
        "",
        "n is the number of relevant responses coded with a theme; a theme's n includes the "
        "responses coded with its sub-themes. A response can be coded with several themes, so the "
        "theme counts do not add up to the number of responses.",
        "",
    ]

    for question in report.questions:
        out += [f"## {question.title}", ""]
        if question.text and question.text != question.question_id:
            out += [f"> {question.text}", ""]
        out += [
            f"**Responses:** {question.responses} (relevant {question.relevant}, "
            f"excluded as not relevant {question.excluded}).",
            "",
            f"**Does it resonate?** {question.resonance}",
            "",
            f"*{question.status.line()}*",
            "",
        ]
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
