"""How fast the host is while the benchmark runs: the server core's speed and the data disk's fdatasync.

On the shared hosts the benchmark runs on, the speed of a core moves by a factor of two or more within an hour,
and the disk's fdatasync, which every hook call waits for (the durable audit write), has a tail that moves too.
A probe takes about a second, made between groups of runs while no server is busy, so that a reader of the
results can tell a slow stretch of the host from a slow service.

    .venv/bin/python bench/host_probe.py [--core 0] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The calibration loop quoted in docs/performance.md: a 3-million-step list comprehension.
LOOP_CODE = "import time\nt = time.perf_counter()\n[i for i in range(3_000_000)]\nprint(time.perf_counter() - t)"
PAGE = 4096
COMMIT_PAGES = 9
"""WAL pages one audit record's commit writes (8 to 11 seen with strace on the SQLite store)."""


def cpu_loop_seconds(core: int | None, repeats: int = 3) -> float:
    """Best of ``repeats`` runs of the calibration loop, each in a fresh interpreter on ``core``."""
    command = [sys.executable, "-c", LOOP_CODE]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    runs = [float(subprocess.run(command, capture_output=True, text=True, check=True).stdout) for _ in range(repeats)]
    return round(min(runs), 4)


def fdatasync_ms(directory: Path, samples: int = 200, pages: int = COMMIT_PAGES) -> dict[str, float]:
    """``pages`` pages overwritten in a preallocated file, then fdatasync, ``samples`` times: what a commit
    asks of the disk once SQLite's WAL has reached its working size (overwritten, not grown). Milliseconds."""
    block = os.urandom(PAGE * pages)
    slots = 64
    timings: list[float] = []
    with tempfile.NamedTemporaryFile(dir=directory, prefix="fsync-probe-") as handle:
        fd = handle.fileno()
        os.pwrite(fd, bytes(len(block) * slots), 0)
        os.fsync(fd)
        for index in range(samples):
            started = time.perf_counter()
            os.pwrite(fd, block, (index % slots) * len(block))
            os.fdatasync(fd)
            timings.append((time.perf_counter() - started) * 1000)
    ordered = sorted(timings)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "max": round(ordered[-1], 3),
        "samples": samples,
        "pages": pages,
    }


def core_times(core: int | None, stat_text: str | None = None) -> tuple[int, int] | None:
    """(stolen, all) clock ticks of ``core`` (all cores when ``None``) since boot, from ``/proc/stat``; ``None``
    where there is no such file or line. Stolen time is what the hypervisor gave to other guests while this one
    had work to run."""
    try:
        text = stat_text if stat_text is not None else Path("/proc/stat").read_text()
    except OSError:
        return None
    name = "cpu" if core is None else f"cpu{core}"
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == name and len(fields) > 8:
            ticks = [int(value) for value in fields[1:]]
            # guest and guest_nice (fields 9 and 10) are already counted in user and nice
            return ticks[7], sum(ticks[:8])
    return None


def steal_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the core's time stolen between two readings of ``core_times``."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)


def probe(label: str, core: int | None, directory: Path) -> dict[str, Any]:
    return {
        "before": label,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_loop_s": cpu_loop_seconds(core),
        "fdatasync_ms": fdatasync_ms(directory),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--core", type=int, default=0, help="core to time the loop on (-1: not pinned)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="a folder on the data disk")
    args = parser.parse_args()
    print(json.dumps(probe("command line", None if args.core < 0 else args.core, args.dir), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
