"""Two reviewers on one project file at the same time lose no decisions."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from coder.review import ReviewIndex
from coder.store import Store
from tests.review_data import build_project, small_codebook

REPO = Path(__file__).resolve().parents[1]

# Each process opens its own Store (its own connection), builds the index like the app
# does, and writes decisions as fast as it can while the other one does the same.
WRITER = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path
    from coder import review
    from coder.store import Store
    from schemas import Labels

    path, reviewer, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store(path)
    index = review.ReviewIndex(store)
    entries = index.entries
    # Start together: each says it is ready and waits for the other.
    Path(path + "." + reviewer + ".ready").touch()
    while len(list(Path(path).parent.glob("*.ready"))) < 2:
        time.sleep(0.005)
    for number in range(count):
        entry = entries[number % len(entries)]
        action = "accept" if number % 3 else "correct"
        review.record_decision(
            store, index, response_id=entry.response_id, reviewer=reviewer, action=action,
            labels=Labels(question=entry.question, themes=["data"]),
        )
        if number % 10 == 9:
            index.sync()  # fold in the other reviewer's decisions, as the queue screen does
    store.close()
    print("done", reviewer)
    """
)


@pytest.mark.slow
def test_two_processes_write_decisions_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    build_project(path, 50, codebook=small_codebook()).close()
    count = 1000
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), reviewer, str(count)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for reviewer in ("ann", "bob")
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert out.startswith("done")
    with Store(path) as store:
        decisions = store.decisions()
        assert len(decisions) == 2 * count
        by_reviewer = {"ann": 0, "bob": 0}
        for decision in decisions:
            by_reviewer[decision.reviewer] += 1
        assert by_reviewer == {"ann": count, "bob": count}
        # The writes really were interleaved (both processes held the file at once).
        switches = sum(
            1
            for first, second in zip(decisions, decisions[1:], strict=False)
            if first.reviewer != second.reviewer
        )
        assert switches > 10
        # Both reviewers' statuses are visible to a fresh index.
        index = ReviewIndex(store)
        assert all(entry.state("ann").status != "unreviewed" for entry in index.entries)
        assert all(entry.state("bob").status != "unreviewed" for entry in index.entries)
