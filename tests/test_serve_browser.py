"""Two reviewers review at once in headless Chromium through a real ``coder serve``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coder import reviewers
from coder.store import Store
from tests.cdp import Browser, Page, chromium_or_skip
from tests.review_data import build_project
from tests.serve_harness import (
    ServeProcess,
    leases_of,
    served_app_processes,
    wait_until,
)

pytest.importorskip("textual_serve")
pytestmark = pytest.mark.slow

N = 24


def _decisions(db_path: Path) -> list[tuple[str, str, str]]:
    with Store(db_path) as store:
        return [(d.reviewer, d.action, d.response_id) for d in store.decisions()]


async def _sign_in(page: Page, link: str, db_path: Path, reviewer: str) -> str:
    """Open the sign-in link; return the item the reviewer's app leased."""
    await page.navigate(link)
    leases = await wait_until(
        lambda: leases_of(db_path).get(reviewer), what=f"{reviewer}'s app to show an item"
    )
    # The app has drawn itself in this page: its status bar names the reviewer's progress.
    await page.wait_for(f"window.__frames.some(f => f[1].includes('0/{N} reviewed'))")
    await page.focus_terminal()
    return leases[0].response_id  # type: ignore[index, no-any-return]


async def _decide(
    page: Page, db_path: Path, reviewer: str, keys: list[str], count: int
) -> tuple[str, str]:
    """Press ``keys``; wait for the reviewer's ``count``-th decision; return (action, item)."""
    for key in keys:
        await page.press(key)
    await wait_until(
        lambda: sum(1 for name, *_ in _decisions(db_path) if name == reviewer) >= count,
        what=f"{reviewer}'s decision {count}",
    )
    await page.wait_for(f"window.__frames.some(f => f[1].includes('{count}/{N} reviewed'))")
    mine = [(action, item) for name, action, item in _decisions(db_path) if name == reviewer]
    return mine[count - 1]


def test_two_reviewers_accept_and_correct_in_browsers(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    db_path = tmp_path / "served.db"
    with build_project(db_path, N) as store:
        links = {
            name: reviewers.sign_in_link("http://placeholder", name, reviewers.add_reviewer(store, name))
            for name in ("ann", "bob")
        }

    async def scenario() -> None:
        server = await ServeProcess.start(db_path)
        browser = await Browser.launch(chromium)
        try:
            link = {name: url.replace("http://placeholder", server.url) for name, url in links.items()}
            ann, bob = await browser.new_page(), await browser.new_page()
            ann_item = await _sign_in(ann, link["ann"], db_path, "ann")
            bob_item = await _sign_in(bob, link["bob"], db_path, "bob")
            assert ann_item != bob_item  # the lease kept bob off ann's item
            assert len(served_app_processes(db_path)) == 2

            # ann accepts, bob corrects (theme 1 toggled, then accept, reason 'other').
            assert await _decide(ann, db_path, "ann", ["a"], 1) == ("accept", ann_item)
            assert await _decide(bob, db_path, "bob", ["1", "a", "o"], 1) == ("correct", bob_item)
            # Both move on, never onto the other's item.
            now = leases_of(db_path)
            ann_next, bob_next = now["ann"][0].response_id, now["bob"][0].response_id
            assert ann_next != bob_next and {ann_next, bob_next}.isdisjoint({ann_item, bob_item})
            # ... and swap roles.
            assert await _decide(ann, db_path, "ann", ["1", "enter", "w"], 2) == ("correct", ann_next)
            assert await _decide(bob, db_path, "bob", ["enter"], 2) == ("accept", bob_next)

            # A wrong token gets the sign-in page again and no app process.
            intruder = await browser.new_page()
            await intruder.navigate(link["ann"].replace("token=", "token=x"))
            await intruder.wait_for("document.body.innerText.includes('do not match')")
            assert await intruder.evaluate("window.__sockets") == 0
            # No token at all: the sign-in page, no websocket, no process.
            stranger = await browser.new_page()
            await stranger.navigate(server.url + "/")
            await stranger.wait_for("document.querySelector('form#sign-in') !== null")
            assert await stranger.evaluate("window.__sockets") == 0
            assert len(served_app_processes(db_path)) == 2
        finally:
            await browser.close()
            await server.stop()
        log = "".join(server.log)
        assert "ann signed in" in log and "bob signed in" in log
        assert "refused a sign-in" in log
        assert "token=" not in log  # tokens never reach the log
        # Ctrl+C ended both sessions cleanly: their app processes quit and released leases.
        await wait_until(lambda: not served_app_processes(db_path), what="app processes to end")
        assert leases_of(db_path) == {}

    asyncio.run(scenario())
    decisions = _decisions(db_path)
    assert [(r, a) for r, a, _ in decisions if r == "ann"] == [("ann", "accept"), ("ann", "correct")]
    assert [(r, a) for r, a, _ in decisions if r == "bob"] == [("bob", "correct"), ("bob", "accept")]
    assert {r for r, _, _ in decisions} == {"ann", "bob"}
