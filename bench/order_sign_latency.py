"""Latency of an order-sign call with full prefetch for a realistic patient.

Starts the service (uvicorn, one worker, SQLite audit store in a temporary folder) on a free port, sends
the realistic-full-record scenario as an EHR would (full prefetch: about 60 Observations, 10 medicines,
8 conditions) over one keep-alive connection, and reports median, p95 and p99 latency, plus the in-process
pipeline time without HTTP. Results are printed as a table and written as JSON.

    .venv/bin/python bench/order_sign_latency.py [--calls 2000] [--warmup 200] [--json bench/results/latency.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.records import record_as_of_today  # noqa: E402
from cds_service.cli.evaluate import run  # noqa: E402
from cds_service.knowledge import load_knowledge  # noqa: E402
from cds_service.scenarios import request_from_record  # noqa: E402

SERVICE = "palbociclib-order-sign"
SCENARIO = REPO / "fhir_fixtures" / "realistic-full-record.json"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(values),
        "p95_ms": percentile(values, 95),
        "p99_ms": percentile(values, 99),
        "mean_ms": statistics.fmean(values),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def in_process(body: dict[str, Any], calls: int) -> list[float]:
    knowledge = load_knowledge(REPO / "cards")
    now = datetime.now(UTC)  # the body's dates are moved to today (bench.records)

    async def timed() -> list[float]:
        timings = []
        for _ in range(calls):
            started = time.perf_counter()
            await run(knowledge, body, SERVICE, now)
            timings.append((time.perf_counter() - started) * 1000)
        return timings

    return asyncio.run(timed())


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "cds_service", "serve", "--port", str(port)]


def over_http(
    payload: bytes, calls: int, warmup: int, command: Callable[[int], list[str]] = serve_command
) -> list[float]:
    """Start the server ``command`` gives on a free port, warm it up, and time ``calls`` posts of ``payload``."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "CDS_DATA_DIR": data,
            "CDS_LOG_LEVEL": "warning",
            "CDS_AUTH_REQUIRED": "false",
        }  # no JWT here
        server = subprocess.Popen(
            command(port), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            url = f"http://127.0.0.1:{port}"
            session = requests.Session()
            for _ in range(300):
                try:
                    session.get(f"{url}/cds-services", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.05)
            headers = {"Content-Type": "application/json"}
            timings = []
            for index in range(warmup + calls):
                started = time.perf_counter()
                response = session.post(f"{url}/cds-services/{SERVICE}", data=payload, headers=headers, timeout=10)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if index >= warmup:
                    timings.append(elapsed)
            return timings
        finally:
            server.terminate()
            server.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "order_sign_latency.json")
    args = parser.parse_args()

    knowledge = load_knowledge(REPO / "cards")
    record = record_as_of_today(SCENARIO)
    body = request_from_record(record, knowledge.registry[SERVICE], hook_instance="bench")
    payload = json.dumps(body).encode()
    prefetch = body["prefetch"]
    counts = {
        "observations": sum(
            len(v.get("entry", []))
            for k, v in prefetch.items()
            if v
            and v.get("resourceType") == "Bundle"
            and k not in ("medicationRequests", "medicationStatements", "conditions", "procedures")
        ),
        "medicines": sum(
            len((prefetch.get(k) or {}).get("entry", [])) for k in ("medicationRequests", "medicationStatements")
        ),
        "conditions": len((prefetch.get("conditions") or {}).get("entry", [])),
        "request_bytes": len(payload),
    }
    pipeline = summary(in_process(body, max(args.calls // 2, 100)))
    http = summary(over_http(payload, args.calls, args.warmup))
    result = {
        "scenario": SCENARIO.name,
        "calls": args.calls,
        "payload": counts,
        "http": http,
        "pipeline_in_process": pipeline,
        "python": sys.version.split()[0],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"payload: {counts}")
    print(f"{'path':<22}{'median ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for name, stats in (("HTTP order-sign", http), ("pipeline in-process", pipeline)):
        print(f"{name:<22}{stats['median_ms']:>10.2f}{stats['p95_ms']:>10.2f}{stats['p99_ms']:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
