"""Two processes writing audit records to one SQLite file at a fixed rate each, with and without the writer lock
(``cds_service/audit/writer_lock.py``): the latency of a durable write, as two workers of one pod see it.

    .venv/bin/python bench/sqlite_writers.py [--rate 250] [--records 2500] [--rounds 3]

Prints one line per run, alternating without and with the lock, and writes bench/results/sqlite-writers.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.order_sign_latency import percentile  # noqa: E402
from cds_service.audit.records import InvocationRecord  # noqa: E402
from cds_service.audit.store import SqlAuditStore  # noqa: E402

PROCESSES = 2


def _writer(url: str, locked: bool, records: int, rate: float, name: str, out: Any) -> None:
    store = SqlAuditStore(url)
    if not locked:
        store._writer_lock = None
    latencies: list[float] = []
    due = time.perf_counter()
    for index in range(records):
        due += 1 / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        record = InvocationRecord(
            service_id="palbociclib-order-sign", received_at=datetime.now(UTC), knowledge_version="bench"
        )
        record.hook_instance = f"{name}-{index}"
        record.http_status = 200
        started = time.perf_counter()
        store.record_invocation(record)
        latencies.append((time.perf_counter() - started) * 1000)
    ok = store.verify().ok
    store.close()
    out.put((latencies, ok))


def run(locked: bool, rate: float, records: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sqlite-writers-") as folder:
        url = f"sqlite:///{Path(folder) / 'audit.sqlite3'}"
        SqlAuditStore(url).close()  # schema and chain head before the writers start
        out: Any = mp.get_context("spawn").Queue()
        workers = [
            mp.get_context("spawn").Process(target=_writer, args=(url, locked, records, rate, f"w{i}", out))
            for i in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        results = [out.get() for _ in workers]
        for worker in workers:
            worker.join()
    latencies = [value for values, _ in results for value in values]
    return {
        "writer_lock": locked,
        "processes": PROCESSES,
        "rate_per_process": rate,
        "records": len(latencies),
        "chain_verifies": all(ok for _, ok in results),
        "write_ms": {
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "max": max(latencies),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=250.0, help="records per second per process")
    parser.add_argument("--records", type=int, default=2500, help="records per process and run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sqlite-writers.json")
    args = parser.parse_args()
    runs = []
    for _ in range(args.rounds):
        for locked in (False, True):
            result = run(locked, args.rate, args.records)
            ms = result["write_ms"]
            print(
                f"writer lock {'on ' if locked else 'off'}: {result['records']} writes, "
                f"p50 {ms['p50']:.2f} ms, p99 {ms['p99']:.2f} ms, max {ms['max']:.1f} ms, "
                f"chain verifies: {result['chain_verifies']}"
            )
            runs.append(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"measured_at": datetime.now(UTC).isoformat(), "runs": runs}, indent=2) + "\n")
    return 0 if all(r["chain_verifies"] for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
