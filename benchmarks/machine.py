"""Machine description and result files shared by the benchmark scripts."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    # The int8 encoder's speed (and its last digits) depend on these: the same code ran
    # 679 proposals/s on a 2-core Xeon VM and 284/s on an AVX2-only 2-core EPYC VM.
    vector_extensions: list[str] = []
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    # The first core's entries describe them all.
    for line in lines:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    for line in lines:
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
            vector_extensions = [flag for flag in wanted if flag in flags]
            break
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        memory_gib = None
    return {
        "cpu": cpu,
        "vector_extensions": vector_extensions,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "commit": _git_commit(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def peak_rss_mib() -> float:
    """Peak resident set size of this process (and waited-for children), MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``results/NAME.json`` with the machine noted, and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine_info(), **result}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return path
