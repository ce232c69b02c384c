"""Markdown and self-contained HTML reports of an eval run (plots embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: reports are written by CLI runs and CI

import matplotlib.pyplot as plt  # noqa: E402


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def plots(metrics: dict[str, Any]) -> dict[str, str]:
    """Named base64 PNGs: per-code F1 vs prevalence, confusion matrices, calibration, learning curve."""
    out: dict[str, str] = {}
    per_code = metrics.get("themes", {}).get("per_code") or {}
    if per_code:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [v["prevalence"] or 0 for v in per_code.values()]
        ys = [v["f1"] or 0 for v in per_code.values()]
        ax.scatter(xs, ys, s=14)
        ax.set_xscale("log")
        ax.set_xlabel("prevalence (share of items, log scale)")
        ax.set_ylabel("F1")
        ax.set_title("Per-code F1 vs prevalence")
        out["F1 vs prevalence"] = _png(fig)
    for field in ("stance", "relevance"):
        section = metrics.get(field) or {}
        if "confusion" not in section:
            continue
        labels = section.get("categories") or ["relevant", "not relevant"]
        fig, ax = plt.subplots(figsize=(4 + 0.4 * len(labels), 3.5 + 0.3 * len(labels)))
        ax.imshow(section["confusion"], cmap="Blues")
        for i, row in enumerate(section["confusion"]):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
        ax.set_title(f"{field} confusion matrix")
        out[f"{field} confusion"] = _png(fig)
    calib = metrics.get("calibration") or {}
    if calib:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        for name, data in calib.items():
            points = [(b["confidence"], b["accuracy"]) for b in data["bins"] if b["n"]]
            if points:
                ax.plot(
                    *zip(*points, strict=True),
                    marker="o",
                    label=f"{name} (ECE {_fmt(data['ece'])})",
                )
        ax.set_xlabel("confidence")
        ax.set_ylabel("share correct")
        ax.legend()
        ax.set_title("Calibration")
        out["calibration"] = _png(fig)
    curve = metrics.get("learning_curve") or []
    if curve:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for key in ("themes.micro_f1", "themes.macro_f1", "stance.accuracy"):
            points = [(p["n_train"], p.get(key)) for p in curve if p.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=key)
        ax.set_xlabel("training items")
        ax.set_ylabel("score")
        ax.legend()
        ax.set_title("Learning curve")
        out["learning curve"] = _png(fig)
    return out


def headline_rows(metrics: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(metric path, value, [lo, hi] or None) for the figures shown first."""
    from eval.scoring import lookup

    rows = []
    for path in (
        "themes.micro_f1",
        "themes.macro_f1",
        "themes.samples_f1",
        "themes.exact_match",
        "themes.masi_alpha",
        "themes.mv_alpha",
        "stance.accuracy",
        "stance.macro_f1",
        "stance.kappa",
        "stance.kappa_linear",
        "relevance.f1",
        "relevance.kappa",
        "matching.map_strict",
        "matching.map_relaxed",
    ):
        try:
            value = lookup(metrics, path)
        except KeyError:
            continue
        rows.append((path, value, metrics.get("ci", {}).get(path)))
    return rows


def _signed(value: Any) -> str:
    return "–" if value is None else f"{value:+.3f}"


def baseline_lines(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]], str]:
    """Header, rows and caption of the model-vs-baselines table (empty without baselines)."""
    from eval import baselines

    block = metrics.get("baselines")
    if not block:
        return [], [], ""
    has_tfidf = baselines.TFIDF in block
    header = ["metric", "model", "naive baseline"]
    header += (
        ["TF-IDF", "added value over naive", "added value over TF-IDF"]
        if has_tfidf
        else ["added value"]
    )
    rows = []
    for key, model, naive, tfidf, over_naive, over_tfidf in baselines.table_rows(metrics, block):
        row = [key, _fmt(model), _fmt(naive)]
        if has_tfidf:
            row += [_fmt(tfidf), _signed(over_naive), _signed(over_tfidf)]
        else:
            row += [_signed(over_naive)]
        rows.append(row)
    for n_train, key, model, naive, tfidf, over_naive, over_tfidf in baselines.curve_rows(
        metrics.get("learning_curve") or []
    ):
        row = [f"{key} @ {n_train} training items", _fmt(model), _fmt(naive)]
        if has_tfidf:
            row += [_fmt(tfidf), _signed(over_naive), _signed(over_tfidf)]
        else:
            row += [_signed(over_naive)]
        rows.append(row)
    caption = f"Naive: nearest theme by MiniLM cosine; {baselines.caption(block)}."
    return header, rows, caption


def _write_text(path: Path, text: str) -> None:
    from coder.atomic import write_atomically

    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


@dataclass
class _Sections:
    """What both report files show, computed once."""

    title: str
    n_items: Any
    headline: list[tuple[str, Any, Any]]
    baseline_header: list[str]
    baseline_rows: list[list[str]]
    baseline_caption: str
    #: (code, figures) by descending support
    per_code: list[tuple[str, dict[str, Any]]]
    images: dict[str, str]


def _interval(ci: Any) -> str:
    return f"{_fmt(ci[0])}–{_fmt(ci[1])}" if ci else ""


def _markdown(report: _Sections) -> str:
    """The report as Markdown (plots as inline PNG data)."""
    lines = [
        f"# {report.title}",
        "",
        f"Items: {report.n_items}",
        "",
        "| metric | value | 95% CI |",
        "|---|---|---|",
    ]
    for path, value, ci in report.headline:
        lines.append(f"| {path} | {_fmt(value)} | {_interval(ci)} |")
    header, rows = report.baseline_header, report.baseline_rows
    if rows:
        lines += ["", "## Baselines", "", report.baseline_caption, ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    if report.per_code:
        lines += [
            "",
            "## Per code",
            "",
            "| code | prevalence | support | precision | recall | F1 | kappa | scope |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for code, v in report.per_code:
            lines.append(
                f"| {code} | {_fmt(v['prevalence'])} | {v['support']} | {_fmt(v['precision'])} | "
                f"{_fmt(v['recall'])} | {_fmt(v['f1'])} | {_fmt(v['kappa'])} | {v['scope']} |"
            )
    for name, data in report.images.items():
        lines += ["", f"## {name}", "", f"![{name}](data:image/png;base64,{data})"]
    return "\n".join(lines) + "\n"


def _html(report: _Sections) -> str:
    """The report as one HTML page (every text escaped; plots as inline PNG data)."""
    title = report.title
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Items: {report.n_items}</p>",
        "<table><tr><th>metric</th><th>value</th><th>95% CI</th></tr>",
    ]
    for path, value, ci in report.headline:
        body.append(
            f"<tr><td>{html.escape(path)}</td><td>{_fmt(value)}</td><td>{_interval(ci)}</td></tr>"
        )
    body.append("</table>")
    if report.baseline_rows:
        body.append(f"<h2>Baselines</h2><p>{html.escape(report.baseline_caption)}</p><table><tr>")
        body.append(
            "".join(f"<th>{html.escape(cell)}</th>" for cell in report.baseline_header) + "</tr>"
        )
        for row in report.baseline_rows:
            body.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>")
        body.append("</table>")
    if report.per_code:
        body.append(
            "<h2>Per code</h2><table><tr><th>code</th><th>prevalence</th><th>support</th><th>precision</th><th>recall</th><th>F1</th><th>kappa</th><th>scope</th></tr>"
        )
        for code, v in report.per_code:
            body.append(
                f"<tr><td>{html.escape(code)}</td><td>{_fmt(v['prevalence'])}</td><td>{v['support']}</td>"
                f"<td>{_fmt(v['precision'])}</td><td>{_fmt(v['recall'])}</td><td>{_fmt(v['f1'])}</td>"
                f"<td>{_fmt(v['kappa'])}</td><td>{v['scope']}</td></tr>"
            )
        body.append("</table>")
    for name, data in report.images.items():
        body.append(
            f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + "</title><style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def write_report(
    metrics: dict[str, Any], folder: Path, title: str = "coder eval"
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``folder``; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    images = plots(metrics)
    header, rows, caption = baseline_lines(metrics)
    per_code = metrics.get("themes", {}).get("per_code") or {}
    report = _Sections(
        title=title,
        n_items=metrics.get("n_items"),
        headline=headline_rows(metrics),
        baseline_header=header,
        baseline_rows=rows,
        baseline_caption=caption,
        per_code=sorted(per_code.items(), key=lambda kv: -kv[1]["support"]),
        images=images,
    )
    md_path = folder / "report.md"
    _write_text(md_path, _markdown(report))
    html_path = folder / "report.html"
    _write_text(html_path, _html(report))
    return md_path, html_path
