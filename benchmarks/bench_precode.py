"""Pre-coding throughput against an OpenAI-compatible server with 200 ms latency.

Target: at each concurrency (1, 8, 32) the run takes no more than 1/0.9 of the ideal
``n x latency / concurrency``, i.e. ``ideal / actual >= 0.9``. A second run over the same
project must make zero calls.

The fake server (tests/llm_fake_server.py) runs in its own process, so its threads do
not compete with the pipeline for this process's GIL; the pipeline is the real one
(``coder.precode.precode`` with ``LLMClassifier``, instructor, SQLite commits).

The target is about the client's own cost per call, so these runs send the whole codebook
(``shortlist=False``). ``--shortlisted-run`` adds one run at the highest concurrency with the
default shortlist, whose ranking (the embedded model, about 1-2 ms of CPU per answer)
shares the same two cores; it is reported beside the target, not in it.

Run: python benchmarks/bench_precode.py [--responses 2000] [--latency 0.2]
     [--concurrency 1 8 32] [--quick] [--shortlisted-run] [--profile FILE]
     (--quick: 200 responses at concurrency 1; --profile: a CPU-time profile of the
     highest-concurrency run, e.g. --concurrency 32 --profile /tmp/precode.pstats;
     CODER_LLM_CLIENT=openai measures the openai client under instructor instead of
     coder.llm.direct_chat)

At concurrency 32 the client's one asyncio thread must spend well under 6 ms of CPU per
answer (160 answers/s ideal) and shares the machine with the fake server (about 0.7 ms
per answer): client_cpu_ms_per_response and server_cpu_ms_per_response say which side
is short, and load_average_1m says whether the machine was.
Writes benchmarks/results/precode.json (or --out FILE).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from machine import machine_info, peak_rss_mib, write_result  # noqa: E402

from coder.llm import direct_chat  # noqa: E402
from coder.llm.classifier import LLMClassifier  # noqa: E402
from coder.llm.transport import LoggingTransport  # noqa: E402
from coder.precode import precode  # noqa: E402
from coder.store import Store  # noqa: E402
from tests.llm_fake_server import make_project  # noqa: E402

TARGET_RATIO = 0.9
SERVER_SCRIPT = """
import sys, threading
from tests.llm_fake_server import FakeOpenAI
fake = FakeOpenAI(latency=float(sys.argv[1]))
fake.start()
print(fake.base_url, flush=True)
sys.stdin.read()  # until the parent closes our stdin
fake.stop()
"""


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (or of child ``pid``, from /proc)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def fake_server(latency: float) -> Iterator[tuple[str, int]]:
    """A FakeOpenAI in a child process; yields its base URL and process id."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(latency)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError("the fake server did not start")
        yield base_url, process.pid
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def classifier(base_url: str, concurrency: int, shortlist: bool = False) -> LLMClassifier:
    return LLMClassifier(
        model="gpt-4o-mini",
        base_url=base_url,
        mode="tools",
        concurrency=concurrency,
        initial_wait=0.01,
        shortlist=shortlist,
    )


def run_one(
    base_url: str,
    n: int,
    concurrency: int,
    latency: float,
    server_pid: int | None = None,
    shortlist: bool = False,
    profile: cProfile.Profile | None = None,
) -> dict[str, Any]:
    """Pre-code a fresh ``n``-response project; then a second run that must call nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        make_project(db, n=n).close()
        with Store(db) as store:
            first = classifier(base_url, concurrency, shortlist)
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            cpu_before = cpu_seconds()
            server_before = cpu_seconds(server_pid) if server_pid else 0.0
            if profile is not None:
                profile.enable()
            summary = precode(store, first)
            if profile is not None:
                profile.disable()
            seconds = time.perf_counter() - started
            client_cpu = cpu_seconds() - cpu_before
            server_cpu = (cpu_seconds(server_pid) - server_before) if server_pid else None
            assert summary.proposed == n and summary.failed == 0, summary.errors[:3]
            calls_logged = store.db.execute("select count(*) from llm_calls").fetchone()[0]

            second = classifier(base_url, concurrency, shortlist)
            again = precode(store, second)
            calls_after = store.db.execute("select count(*) from llm_calls").fetchone()[0]
            assert second.stats.calls == 0 and calls_after == calls_logged, "second run called"
            assert again.proposed == 0 and again.already_done == n
    ideal = n * latency / concurrency
    return {
        "responses": n,
        "concurrency": concurrency,
        "shortlist": shortlist,
        "seconds": round(seconds, 2),
        "ideal_seconds": round(ideal, 2),
        "ratio_to_ideal": round(ideal / seconds, 3),
        "responses_per_second": round(n / seconds, 1),
        "calls": first.stats.calls,
        # What ran: the event loop (coder/llm/event_loop.py; precode's own run decides) and
        # the HTTP transport under the openai client (coder/llm/aiohttp_transport.py).
        "event_loop": first.stats.event_loop,
        "http_transport": type(LoggingTransport(first, concurrency).inner).__name__,
        # Who builds requests and reads answers under instructor: coder.llm.direct_chat, or
        # the openai client (CODER_LLM_CLIENT=openai).
        "llm_client": "direct" if direct_chat.wanted() else "openai",
        # CPU per response: at high concurrency the 2 shared cores, not the pipeline's
        # waiting, set the pace.
        "client_cpu_ms_per_response": round(client_cpu * 1000 / n, 2),
        "server_cpu_ms_per_response": (
            round(server_cpu * 1000 / n, 2) if server_cpu is not None else None
        ),
        "second_run_calls": second.stats.calls,
        # The 1-minute load average as the run started and ended: the machine is shared.
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "meets_target": ideal / seconds >= TARGET_RATIO,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--responses", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--quick", action="store_true", help="200 responses at concurrency 1 (not the figure)"
    )
    parser.add_argument(
        "--shortlisted-run",
        action="store_true",
        help="also one run at the highest concurrency with the default shortlist",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="profile the highest-concurrency run (CPU time, cProfile): write FILE (pstats) "
        "and print its top functions to stderr",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="write the JSON to FILE instead of benchmarks/results/precode.json",
    )
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-local")
    runs = []
    load_before = os.getloadavg()
    with fake_server(args.latency) as (base_url, server_pid):
        for concurrency in args.concurrency:
            n = min(args.responses, 200) if args.quick and concurrency == 1 else args.responses
            # CPU time, not wall time: on a shared machine a wall-clock profile charges
            # other processes' time to whatever this one was doing when it was descheduled.
            profile = (
                cProfile.Profile(time.process_time)
                if args.profile and concurrency == max(args.concurrency)
                else None
            )
            run = run_one(base_url, n, concurrency, args.latency, server_pid, profile=profile)
            if profile is not None:
                profile.dump_stats(args.profile)
                stats = pstats.Stats(profile, stream=sys.stderr)
                stats.sort_stats("tottime").print_stats(25)
            print(run, file=sys.stderr, flush=True)
            runs.append(run)
        shortlisted = None
        if args.shortlisted_run:
            top = max(args.concurrency)
            shortlisted = run_one(base_url, args.responses, top, args.latency, server_pid, True)
            print(shortlisted, file=sys.stderr, flush=True)
    result = {
        "latency_seconds": args.latency,
        # The machine is shared: the concurrency-32 figure is CPU-bound, so note the load.
        "load_average_1_5_15": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "quick": args.quick,
        "runs": runs,
        "shortlisted_run": shortlisted,
        "target": f"ratio_to_ideal >= {TARGET_RATIO} at every concurrency; second run 0 calls",
        "meets_target": all(run["meets_target"] for run in runs),
        "min_ratio_to_ideal": min(run["ratio_to_ideal"] for run in runs),
        "second_run_calls": sum(run["second_run_calls"] for run in runs),
        "command": " ".join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
        "peak_rss_mib": peak_rss_mib(),
    }
    if args.out:
        # A figure measured on a busy machine goes elsewhere, not over the recorded one.
        payload = {"benchmark": "precode", "machine": machine_info(), **result}
        Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
        print(json.dumps(payload, indent=2))
    else:
        write_result("precode", result)


if __name__ == "__main__":
    main()
