"""Review TUI speed: key press -> next item drawn, and start-up, at 1k and 100k responses.

Targets: every key of the review loop (benchmarks/review_keys.py) under 50 ms at p95;
start-up (spawn to first item drawn) under 1.0 s; peak RSS under 250 MB.
Each size runs in a fresh child process (so start-up includes the interpreter and imports,
and peak RSS is that size's own), driven by Textual's Pilot on a headless 120x40 screen.

Run: python benchmarks/bench_review.py [--sizes 1000 100000] [--keys 300]
Writes benchmarks/results/review.json. `--start-filter "question:H2" --out review_filter`
starts as `coder review --filter` does (the first item drawn before the index is built).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from review_keys import Display, press_every_key, state  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.5) * 1000, 2),
        "p95_ms": round(percentile(values, 0.95) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }


# --- the child: one size, one fresh process --------------------------------------------


async def drive(db: Path, keys: int, start_filter: str = "") -> dict[str, Any]:
    started = time.perf_counter()
    from coder.review import parse_filter
    from coder.store import Store
    from review_tui.app import ReviewApp
    from review_tui.session import ReviewSession

    imported = time.perf_counter()
    store = Store(db)
    # As `coder review --filter TEXT` starts (coder/cli/review.py).
    queue_filter = parse_filter(start_filter) if start_filter else None
    session = ReviewSession(store, "bench", queue_filter=queue_filter)
    indexed = time.perf_counter()
    app = ReviewApp(session)
    result: dict[str, Any] = {}
    # The Pilot waits for the process to look idle after each key (tens of ms of polling),
    # so its own wall time is not the latency. Instead, note when the screen hands each
    # rendered update to the driver; the last such moment after a key is "drawn".
    displays: list[Display] = []
    original_display = app._display

    first_frame: list[float] = []  # perf_counter and wall clock of the first item drawn

    def display(screen: Any, renderable: Any) -> None:
        original_display(screen, renderable)
        if (
            not first_frame
            and session.item is not None
            and type(app.screen).__name__ == "ReviewScreen"
        ):
            first_frame.extend((time.perf_counter(), time.time()))
        displays.append((time.perf_counter(), time.process_time(), state(app)))

    app._display = display  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        drawn = first_frame[0]
        # A big project's queue index is built in a worker after the first item is drawn
        # (review_tui/session_queue.py); keys are timed once it is ready.
        while not session.index_ready:
            await pilot.pause(0.01)
        index_ready = time.perf_counter()
        await pilot.pause()
        print(f"ready {first_frame[1]!r}", flush=True)
        result["startup_in_process_s"] = {
            "imports": round(imported - started, 3),
            "store_and_first_item": round(indexed - imported, 3),
            "first_item_drawn": round(drawn - started, 3),
            "index_ready": round(index_ready - started, 3),
        }

        result.update(await press_every_key(pilot, app, displays, keys))
        await pilot.press("q")
    from machine import peak_rss_mib

    result["peak_rss_mib"] = peak_rss_mib()
    return result


def child(db: Path, keys: int, start_filter: str) -> None:
    result = asyncio.run(drive(db, keys, start_filter))
    print("RESULT " + json.dumps(result), flush=True)


# --- the parent ------------------------------------------------------------------------


def project(size: int, cache: Path) -> Path:
    """A cached project with ``size`` responses and proposals (built once: ~10 s at 100k)."""
    path = cache / f"review_{size}.db"
    if not path.exists():
        # Built in its own process: Linux carries a process's peak RSS across exec, so a
        # big build here would show up as the measured child's peak.
        start = time.perf_counter()
        code = (
            "import sys; from pathlib import Path; from tests.review_data import build_project;"
            f"build_project(Path({str(path.with_suffix('.tmp'))!r}), {size}).close()"
        )
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
        path.with_suffix(".tmp").rename(path)
        print(f"built {size:,} responses in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return path


def run_size(size: int, keys: int, cache: Path, start_filter: str = "") -> dict[str, Any]:
    source = project(size, cache)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        shutil.copy(source, db)  # decisions of one run never leak into the next
        start = time.time()  # wall clock: the child reports when it drew the first item
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", str(db), "--keys", str(keys)]
            + (["--start-filter", start_filter] if start_filter else []),
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert process.stdout is not None
        startup = None
        result: dict[str, Any] = {}
        for line in process.stdout:
            if line.startswith("ready ") and startup is None:
                startup = float(line.split()[1]) - start
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        process.wait()
        if process.returncode != 0:
            raise SystemExit(f"child failed for {size}")
    run = {"responses": size, "startup_s": round(startup or -1, 3), **result}
    return {**run, "start_filter": start_filter} if start_filter else run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--keys", type=int, default=300, help="accept key presses per size")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "coder-bench")
    parser.add_argument(
        "--start-filter", default="", help="start as `coder review --filter TEXT` does"
    )
    parser.add_argument("--out", default="review", help="results name (benchmarks/results/)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.keys, args.start_filter)
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    runs = [run_size(size, args.keys, args.cache, args.start_filter) for size in args.sizes]
    load_after = os.getloadavg()
    import textual
    from machine import write_result

    write_result(
        args.out,
        {
            "targets": {"every_key_p95_ms": 50, "startup_s": 1.0, "peak_rss_mib": 250},
            "method": (
                "Child process per size; startup_s = spawn to first item drawn (headless "
                "Pilot, 120x40); key timings = from posting the key to the first "
                "screen update that shows the new state: screen, item, labels, note, flag, "
                "filter or typed text (handler, DB write, layout, compositor render; the headless driver writes nothing to a terminal); "
                "'settled' = to the last update (scrollbars, footer) before the app is idle."
            ),
            "textual": textual.__version__,
            # Other work on the machine inflates the tails: note how busy it was.
            "load_average_1_5_15": {"before": load_before, "after": load_after},
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
