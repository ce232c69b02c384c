"""Charts for the HTML report: matplotlib (Agg, no display), embedded as base64 PNG."""

from __future__ import annotations

import base64
import io
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from coder.report.data import QuestionReport  # noqa: E402

_STANCE_COLOURS = {
    "resonates": "#2e7d32",
    "partly": "#f9a825",
    "does_not_resonate": "#c62828",
    "unclear": "#9e9e9e",
}


def _plain(text: str) -> str:
    # matplotlib reads text between two '$' as mathtext (and fails on bad TeX): names from
    # a codebook are plain text.
    return text.replace("$", r"\$")


def _png_data_uri(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    # A fixed metadata block keeps the PNG bytes stable between runs.
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def theme_chart(question: QuestionReport, top: int = 12) -> str | None:
    """Horizontal bars of the top-level themes' n (None when there are no themes)."""
    nodes = question.themes[:top]
    if not nodes:
        return None
    labels = [
        _plain(textwrap.shorten(node.label, 45, placeholder="…")) for node in reversed(nodes)
    ]
    values = [node.n for node in reversed(nodes)]
    figure, axes = plt.subplots(figsize=(7, 0.4 * len(nodes) + 1))
    bars = axes.barh(labels, values, color="#1565c0")
    axes.bar_label(bars, labels=[f"n={v}" for v in values], padding=3, fontsize=8)
    axes.set_xlabel("responses")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(_plain(f"Themes: {question.title}"), fontsize=10)
    axes.spines[["top", "right"]].set_visible(False)
    return _png_data_uri(figure)


def stance_chart(question: QuestionReport) -> str | None:
    """One stacked bar of the stance split (None when nothing is relevant, or the question
    asks for no stance)."""
    parts = [s for s in question.stance if s.n > 0] if question.has_stance else []
    if not parts:
        return None
    figure, axes = plt.subplots(figsize=(7, 1.3))
    left = 0
    for part in parts:
        axes.barh(
            [0],
            [part.n],
            left=left,
            color=_STANCE_COLOURS.get(part.stance_id, "#607d8b"),
            label=_plain(f"{part.label} ({part.n})"),
        )
        left += part.n
    axes.set_yticks([])
    axes.set_xlim(0, max(left, 1))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4, fontsize=8, frameon=False)
    axes.set_title("Does it resonate?", fontsize=10)
    axes.spines[["top", "right", "left"]].set_visible(False)
    return _png_data_uri(figure)
