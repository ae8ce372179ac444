"""Latency cost of the durable audit write.

Runs the realistic order-sign call against a real server twice: with the audit log (SQLite WAL,
synchronous=FULL, committed before the response) and with a store that records nothing, and times
the store's own write (record_invocation) in-process. Prints median and p99 and writes JSON.

    .venv/bin/python bench/audit_write_latency.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.order_sign_latency import SCENARIO, SERVICE, over_http, percentile  # noqa: E402
from bench.records import record_as_of_today  # noqa: E402
from cds_service.audit.records import InvocationRecord  # noqa: E402
from cds_service.audit.store import SqlAuditStore  # noqa: E402
from cds_service.knowledge import load_knowledge  # noqa: E402
from cds_service.scenarios import request_from_record  # noqa: E402


def stats(values: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(values), "p99_ms": percentile(values, 99)}


def no_audit_command(port: int) -> list[str]:
    """The service with an audit store that records nothing (bench/no_audit_app.py)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.no_audit_app:create",
        "--factory",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def store_writes(calls: int) -> list[float]:
    with tempfile.TemporaryDirectory() as data:
        store = SqlAuditStore(f"sqlite:///{data}/audit.sqlite3", Path(data) / "spool.jsonl")
        record: dict[str, Any] = {
            "service_id": SERVICE,
            "hook": "order-sign",
            "http_status": 200,
            "patient_id": "p",
            "user_id": "Practitioner/u",
        }
        timings = []
        for index in range(calls):
            item = InvocationRecord(received_at=datetime.now(UTC), hook_instance=f"h{index}", **record)
            item.cards = [
                {
                    "uuid": f"c{index}-{n}",
                    "ruleId": "partner-missing",
                    "indicator": "warning",
                    "summary": "s",
                    "detail": "d" * 800,
                    "evidence": [],
                }
                for n in range(2)
            ]
            started = time.perf_counter()
            store.record_invocation(item)
            timings.append((time.perf_counter() - started) * 1000)
        store.close()
        return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "audit_write_latency.json")
    args = parser.parse_args()
    knowledge = load_knowledge(REPO / "cards")
    body = request_from_record(record_as_of_today(SCENARIO), knowledge.registry[SERVICE], hook_instance="bench")
    payload = json.dumps(body).encode()
    result = {
        "with_audit": stats(over_http(payload, args.calls, args.warmup)),
        "without_audit": stats(over_http(payload, args.calls, args.warmup, no_audit_command)),
        "store_write_only": stats(store_writes(args.calls)),
        "calls": args.calls,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':<28}{'median ms':>10}{'p99 ms':>10}")
    for name in ("with_audit", "without_audit", "store_write_only"):
        print(f"{name:<28}{result[name]['median_ms']:>10.2f}{result[name]['p99_ms']:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
