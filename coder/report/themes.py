"""A question's theme tree (parents and sub-themes, with n) and its stance counts."""

from __future__ import annotations

from collections import Counter

from coder.report.data import NOT_STATED, StanceCount, ThemeCount
from schemas import Codebook, Theme


def theme_lookup(codebook: Codebook, code: str) -> Theme:
    try:
        return codebook.theme(code)
    except KeyError:
        # A code no longer (or never) in the codebook still counts, under its id.
        return Theme(id=code, label=code, definition="(not in the codebook)")


#: A question's relevant responses by the theme set they count for (parents added under the
#: codebook's rule) and whether a human reviewed them: the theme tree needs no more.
ThemeSets = Counter[tuple[frozenset[str], bool]]


def theme_tree(codebook: Codebook, theme_sets: ThemeSets, relevant: int) -> list[ThemeCount]:
    """Themes coded at least once, as a tree of parents and sub-themes.

    A theme's n is the number of responses coded with it, each counted once. Whether a
    sub-theme also counts for its parent is the codebook's rule
    (``sub_themes_imply_parent``, applied by ``Codebook.with_parents``): by default it
    does not, so a parent shown only because of its sub-themes has n=0.
    """
    direct: Counter[str] = Counter()
    reviewed: Counter[str] = Counter()
    for (codes, is_reviewed), count in theme_sets.items():
        for code in codes:
            direct[code] += count
            if is_reviewed:
                reviewed[code] += count
    themes = {code: theme_lookup(codebook, code) for code in direct}
    # Parents of used sub-themes are shown even when never applied directly.
    for code in list(themes):
        parent = themes[code].parent
        seen = set()
        while parent and parent not in themes and parent not in seen:
            seen.add(parent)
            themes[parent] = theme_lookup(codebook, parent)
            parent = themes[parent].parent
    children: dict[str | None, list[str]] = {}
    for code, theme in themes.items():
        parent = theme.parent if theme.parent in themes else None
        children.setdefault(parent, []).append(code)
    order = {code: index for index, code in enumerate(codebook.theme_ids)}

    def codes_under(code: str) -> set[str]:
        result = {code}
        for child in children.get(code, []):
            result |= codes_under(child)
        return result

    reach: dict[str, int] = {}

    def build(code: str) -> ThemeCount:
        under = codes_under(code)
        # Responses coded with the theme or any theme below it, each once.
        reach[code] = sum(count for (codes, _), count in theme_sets.items() if codes & under)
        theme = themes[code]
        n = direct.get(code, 0)
        nodes = [build(child) for child in children.get(code, [])]
        return ThemeCount(
            theme_id=code,
            label=theme.label,
            definition=theme.definition,
            n=n,
            share=n / relevant if relevant else 0.0,
            reviewed=reviewed.get(code, 0),
            children=_sorted_nodes(nodes, order, reach),
        )

    return _sorted_nodes([build(code) for code in children.get(None, [])], order, reach)


def _sorted_nodes(
    nodes: list[ThemeCount], order: dict[str, int], reach: dict[str, int]
) -> list[ThemeCount]:
    # Largest first, as in the seed's mind maps; a parent with big sub-themes is not sunk
    # to the bottom by its own small n; codebook order breaks ties.
    return sorted(
        nodes,
        key=lambda node: (
            -node.n,
            -reach.get(node.theme_id, 0),
            order.get(node.theme_id, 1 << 30),
            node.theme_id,
        ),
    )


def stance_counts(codebook: Codebook, counts: Counter[str], total: int) -> list[StanceCount]:
    result = []
    labels = {
        value.id: value.label or value.id
        for value in (codebook.stance.values if codebook.stance else [])
    }
    for stance_id in [*labels, *sorted(k for k in counts if k not in labels)]:
        n = counts.get(stance_id, 0)
        if n == 0 and stance_id not in labels:
            continue
        result.append(
            StanceCount(
                stance_id=stance_id,
                label=labels.get(stance_id, stance_id),
                n=n,
                share=n / total if total else 0.0,
            )
        )
    return result


def resonance_sentence(stance: list[StanceCount], relevant: int) -> str:
    if relevant == 0:
        return "No relevant responses."
    stated = [s for s in stance if s.stance_id not in (NOT_STATED, "unclear") and s.n > 0]
    if not stated:
        return "No response said whether it resonates."
    top = max(stated, key=lambda s: s.n)
    parts = ", ".join(f"{s.label.lower()} {s.n}" for s in stance if s.n > 0)
    return f"Most often: {top.label} ({top.n} of {relevant}; {parts})."
