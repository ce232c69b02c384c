"""``coder serve`` with five browser sessions: accept -> next item, as the browser sees it.

Target: p95 <= 150 ms with 5 sessions. A real ``coder serve`` (one app process per session)
and headless Chromium (one browser context per reviewer, signed in with its own token)
run on this machine. Each key press is a real key event in the page (xterm.js turns it into
a websocket message); the latency is from the moment the page sends that message to the
moment it receives the frame whose status bar shows the new count ("k/N reviewed"), which
is drawn together with the next item. Both times are the page's own clock.

Two loads: 'paced' (each reviewer pauses 0.5-1.5 s between items, still far faster than a
person reading an answer) and 'flat_out' (all five press as soon as their next item shows).

Run: python benchmarks/bench_serve.py [--responses 2000] [--accepts 40]
Writes benchmarks/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from coder import reviewers  # noqa: E402
from tests.cdp import Browser, Page, find_chromium  # noqa: E402
from tests.review_data import build_project  # noqa: E402
from tests.serve_harness import ServeProcess, leases_of, wait_until  # noqa: E402

NAMES = ["ann", "bob", "cy", "dee", "eli"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": round(statistics.median(values), 1),
        "p95": round(percentile(values, 0.95), 1),
        "max": round(max(values), 1),
    }


async def accept_once(page: Page, done: int, total: int) -> float:
    """Press 'a'; return ms from the key's websocket message to the redrawn status bar."""
    start = await page.frame_count()
    await page.press("a")
    sent = await page.last_sent()
    assert sent is not None and '"stdin"' in sent[1]
    marker = f"{done:,}/{total:,} reviewed"
    found = await page.wait_for(
        f"window.__frames.slice({start}).find(f => f[1].includes({marker!r}))", timeout=30
    )
    return float(found[0]) - sent[0]


async def reviewer_loop(
    page: Page, count: int, total: int, pause: tuple[float, float] | None, seed: int
) -> list[float]:
    rng = random.Random(seed)
    timings = []
    for number in range(count):
        if pause is not None:
            await asyncio.sleep(rng.uniform(*pause))  # a benchmark's think time, not a test wait
        timings.append(await accept_once(page, number + 1 + page_offsets[page], total))
    page_offsets[page] += count
    return timings


page_offsets: dict[Page, int] = {}


async def run(responses: int, accepts: int, chromium: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "serve.db"
        with build_project(db_path, responses) as store:
            tokens = {name: reviewers.add_reviewer(store, name) for name in NAMES}
        server = await ServeProcess.start(db_path)
        browser = await Browser.launch(chromium)
        try:
            pages: dict[str, Page] = {}
            started = time.perf_counter()
            for name in NAMES:
                page = await browser.new_page(width=1280, height=800)
                await page.navigate(reviewers.sign_in_link(server.url, name, tokens[name]))
                pages[name] = page
                page_offsets[page] = 0
            for name, page in pages.items():
                await wait_until(lambda n=name: leases_of(db_path).get(n), what=f"{name}'s app")
                await page.wait_for(
                    f"window.__frames.some(f => f[1].includes('0/{responses:,} reviewed'))"
                )
                await page.focus_terminal()
            startup_s = time.perf_counter() - started
            loads: dict[str, Any] = {}
            for load, pause in (("paced", (0.5, 1.5)), ("flat_out", None)):
                results = await asyncio.gather(
                    *(
                        reviewer_loop(page, accepts, responses, pause, seed)
                        for seed, page in enumerate(pages.values())
                    )
                )
                timings = [value for result in results for value in result]
                loads[load] = {"accept_next_ms": summary_ms(timings)}
            leased = {name: [lease.response_id for lease in lst] for name, lst in leases_of(db_path).items()}
            distinct = len({rid for ids in leased.values() for rid in ids}) == len(NAMES)
        finally:
            await browser.close()
            await server.stop()
    return {
        "sessions": len(NAMES),
        "responses": responses,
        "accepts_per_session_per_load": accepts,
        "sign_in_to_all_ready_s": round(startup_s, 2),
        "sessions_on_distinct_items_at_end": distinct,
        **loads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--responses", type=int, default=2000)
    parser.add_argument("--accepts", type=int, default=40, help="accepts per session per load")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    load_before = os.getloadavg()
    result = asyncio.run(run(args.responses, args.accepts, chromium))
    load_after = os.getloadavg()
    from importlib.metadata import version

    import textual
    import textual_serve  # noqa: F401
    from machine import write_result

    write_result(
        "serve",
        {
            "targets": {"accept_next_p95_ms": 150},
            "method": __doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else "",
            "textual": textual.__version__,
            "textual_serve": version("textual-serve"),
            "chromium": Path(chromium).name,
            "load_average_1_5_15": {"before": load_before, "after": load_after},
            **result,
        },
    )


if __name__ == "__main__":
    main()
