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
