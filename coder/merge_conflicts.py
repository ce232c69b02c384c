"""Conflicts of a merge: responses both copies labelled differently since they diverged."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from coder.merge_rows import LIGHT_EXTRA, SPEC_OF, Row, light_names


@dataclass(frozen=True)
class Conflict:
    """A response both copies labelled differently since they diverged."""

    response_id: str
    ours_reviewer: str
    ours_labels: str
    theirs_reviewer: str
    theirs_labels: str

    def describe(self) -> str:
        """One line: the response and who decided what."""
        return (f"{self.response_id}: {self.ours_reviewer} (here) {short_labels(self.ours_labels)} / "
                f"{self.theirs_reviewer} (theirs) {short_labels(self.theirs_labels)}")


def short_labels(labels_json: str) -> str:
    data = json.loads(labels_json)
    if not data.get("relevant", True):
        return "not relevant"
    themes = ",".join(data.get("themes") or []) or "no theme"
    stance = f" stance={data['stance']}" if data.get("stance") else ""
    return f"[{themes}]{stance}"


@functools.lru_cache(maxsize=65536)
def plain_labels(labels_json: str) -> str:
    """Labels as a coding decision (quote flag aside, themes sorted), as canonical JSON."""
    data = json.loads(labels_json)
    data.pop("quote", None)
    data["themes"] = sorted(data.get("themes") or [])
    return json.dumps(data, sort_keys=True)


def decision_columns(names: list[str]) -> dict[str, int]:
    """Where a decision's response, reviewer, action and labels are in its light columns."""
    light = light_names(SPEC_OF["decisions"], names)
    return {name: light.index(name) for name in LIGHT_EXTRA["decisions"]}


def in_force(rows: list[Row], names: list[str]) -> dict[str, Row]:
    """Each response's labelling decision in force (Store.final_labels on raw rows)."""
    at = decision_columns(names)
    undoes_at = names.index("undoes")
    undone = {row.refs.get(undoes_at) for row in rows} - {None}
    result: dict[str, Row] = {}
    for row in rows:
        action = row.light[at["action"]]
        if row.uid in undone or row.light[at["labels"]] is None or action == "undo":
            continue
        response_id = row.light[at["response_id"]]
        previous = result.get(response_id)
        if previous is not None and previous.light[at["action"]] == "adjudicate" and action != "adjudicate":
            continue
        result[response_id] = row
    return result


def find_conflicts(ours: list[Row], theirs: list[Row], names: list[str]) -> list[Conflict]:
    at = decision_columns(names)
    our_uids = {row.uid for row in ours}
    their_uids = {row.uid for row in theirs}
    # Responses each side labelled (or undid) since the copies diverged.
    ours_touched = {row.light[at["response_id"]] for row in ours if row.uid not in their_uids}
    theirs_touched = {row.light[at["response_id"]] for row in theirs if row.uid not in our_uids}
    both = ours_touched & theirs_touched
    if not both:
        return []
    ours_final, theirs_final = in_force(ours, names), in_force(theirs, names)
    result = []
    for response_id in sorted(both):
        mine, other = ours_final.get(response_id), theirs_final.get(response_id)
        if mine is None or other is None or mine.uid == other.uid:
            continue
        mine_labels = plain_labels(mine.light[at["labels"]])
        other_labels = plain_labels(other.light[at["labels"]])
        if mine_labels != other_labels:
            result.append(Conflict(response_id, mine.light[at["reviewer"]], mine_labels,
                                   other.light[at["reviewer"]], other_labels))
    return result
