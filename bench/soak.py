"""Bounded soak run: several minutes of mixed hook calls at a steady rate against a real server, faults
included, reporting error counts, latency percentiles and the server's resident memory over time.

Mix per second (default 20 calls/s): full-prefetch calls over the fixture scenarios, FHIR-fallback calls to a
healthy FHIR endpoint and to faulty ones (slow, 503, reset, malformed, endless next links), malformed
requests (400) and feedback. Every answer must be < 500; memory is sampled from /proc every 10 s.

    .venv/bin/python bench/soak.py [--minutes 3] [--rate 20] [--hogs 0] [--io-hog] [--json bench/results/soak.json]

``--hogs N`` runs N busy processes and ``--io-hog`` a writer that fsyncs continuously, for the same mix on a
machine that is busy with other work. A 503 with ``Retry-After`` is load shedding, counted apart from errors;
an error is any other 5xx, or a call that got no answer within the client's 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.order_sign_latency import free_port, percentile  # noqa: E402
from cds_service.knowledge import load_knowledge  # noqa: E402
from cds_service.scenarios import load_manifest, request_from_record  # noqa: E402

SERVICE = "palbociclib-order-sign"
FAULTS = ["none", "slow", "http-503", "reset", "malformed", "endless-next"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


_CPU_HOG = "while True: pass"
_IO_HOG = """
import os, sys
path = sys.argv[1]
while True:
    with open(path, "wb") as handle:
        for _ in range(64):
            handle.write(os.urandom(65536))
            handle.flush()
            os.fsync(handle.fileno())
"""


def failed(status: str) -> bool:
    """Not an answer, or a server error other than load shedding (503 with Retry-After)."""
    return not status.isdigit() or (int(status) >= 500 and status != "503")


def growth_after_first_minute(memory: list[tuple[float, int]]) -> int | None:
    after = [m for t, m in memory if t >= 60]
    return memory[-1][1] - after[0] if after else None


def server_latency(url: str) -> dict[str, Any]:
    """Hook-call latency as the server measured it (its /metrics histogram), by HTTP status: the share of calls
    answered within each bucket bound, to tell the server's own delays from the load client's."""
    from prometheus_client.parser import text_string_to_metric_families

    by_status: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "cds_hook_request_seconds_bucket" and sample.labels.get("service") == SERVICE:
                buckets = by_status.setdefault(sample.labels["status"], {})
                buckets[float(sample.labels["le"])] = sample.value
    out: dict[str, Any] = {}
    for status, buckets in sorted(by_status.items()):
        total = buckets.get(float("inf"), 0.0)
        if total:
            out[status] = {
                "calls": int(total),
                "share_within_ms": {f"{b * 1000:g}": round(n / total, 4) for b, n in sorted(buckets.items())},
            }
    return out


def wait_ready(url: str, seconds: float) -> bool:
    """The soak measures a running service, not its start-up: calls begin once /readyz answers 200."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False


def start_hogs(cpu: int, io: bool) -> list[subprocess.Popen[bytes]]:
    hogs = [subprocess.Popen([sys.executable, "-c", _CPU_HOG]) for _ in range(cpu)]
    if io:
        scratch = Path(tempfile.mkdtemp(prefix="cds-soak-io-")) / "hog.bin"
        hogs.append(subprocess.Popen([sys.executable, "-c", _IO_HOG, str(scratch)]))
    return hogs


def build_requests() -> list[tuple[str, bytes]]:
    knowledge = load_knowledge(REPO / "cards")
    service = knowledge.registry[SERVICE]
    out: list[tuple[str, bytes]] = []
    for entry in load_manifest(REPO / "fhir_fixtures")["scenarios"]:
        record = json.loads((REPO / "fhir_fixtures" / f"{entry['name']}.json").read_text())
        out.append(("prefetch", json.dumps(request_from_record(record, service)).encode()))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second")
    parser.add_argument("--hogs", type=int, default=0, help="busy processes competing for the cores")
    parser.add_argument("--io-hog", action="store_true", help="also a process that writes and fsyncs continuously")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "soak.json")
    args = parser.parse_args()
    hogs = start_hogs(args.hogs, args.io_hog)

    knowledge = load_knowledge(REPO / "cards")
    base_record = json.loads((REPO / "fhir_fixtures" / "clean-base-order.json").read_text())
    fallback = request_from_record(base_record, knowledge.registry[SERVICE], with_prefetch=False)
    prefetched = build_requests()

    stub = subprocess.Popen(
        [sys.executable, "-m", "bench.fhir_stub", "--scenario", "clean-base-order", "--slow-seconds", "3"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stub.stdout is not None
    stub_port = int(stub.stdout.readline())
    port = free_port()
    data = tempfile.mkdtemp(prefix="cds-soak-")
    env = {**os.environ, "CDS_DATA_DIR": data, "CDS_AUTH_REQUIRED": "false", "CDS_LOG_LEVEL": "warning"}
    server = subprocess.Popen(
        [sys.executable, "-m", "cds_service", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_ready(url, seconds=60):
        server.kill()
        stub.kill()
        print("the service did not become ready within 60 s", file=sys.stderr)
        return 2

    statuses: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {"prefetch": [], "fallback": [], "fault": [], "bad": [], "feedback": []}
    memory: list[tuple[float, int]] = []
    lock = threading.Lock()
    stop = time.monotonic() + args.minutes * 60
    started = time.monotonic()

    def one(index: int) -> None:
        kind = ("prefetch", "prefetch", "prefetch", "fallback", "fault", "bad", "feedback")[index % 7]
        headers = {"Content-Type": "application/json"}
        if kind == "prefetch":
            body = prefetched[index % len(prefetched)][1]
        elif kind in ("fallback", "fault"):
            fault = "none" if kind == "fallback" else FAULTS[1 + index % (len(FAULTS) - 1)]
            body = json.dumps(
                {
                    **fallback,
                    "hookInstance": f"soak-{index}",
                    "fhirServer": f"http://127.0.0.1:{stub_port}/fault/{fault}/fhir",
                }
            ).encode()
        elif kind == "bad":
            body = b'{"hook": "order-sign", "context": 5'
        else:
            body = json.dumps(
                {"card": f"soak-card-{index % 50}", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T15:00:00Z"}
            ).encode()
        path = f"/cds-services/{SERVICE}" + ("/feedback" if kind == "feedback" else "")
        begin = time.perf_counter()
        try:
            status = str(requests.post(url + path, data=body, headers=headers, timeout=10).status_code)
        except requests.RequestException as exc:
            status = type(exc).__name__
        with lock:
            statuses[f"{kind}:{status}"] += 1
            latencies[kind].append((time.perf_counter() - begin) * 1000)

    index = 0
    threads: list[threading.Thread] = []
    next_sample = started
    while time.monotonic() < stop:
        if time.monotonic() >= next_sample:
            memory.append((round(time.monotonic() - started, 1), rss_kib(server.pid)))
            next_sample += 10
        thread = threading.Thread(target=one, args=(index,))
        thread.start()
        threads.append(thread)
        index += 1
        threads = [t for t in threads if t.is_alive()]
        time.sleep(max(0.0, started + index / args.rate - time.monotonic()))
    for thread in threads:
        thread.join(timeout=15)
    memory.append((round(time.monotonic() - started, 1), rss_kib(server.pid)))
    server_side = server_latency(url)
    server.terminate()
    server.wait(timeout=15)
    stub.terminate()
    stub.wait(timeout=10)
    for hog in hogs:
        hog.kill()
        hog.wait()
    stub.stdout.close()

    errors = {k: v for k, v in statuses.items() if failed(k.split(":")[1])}
    shed = sum(v for k, v in statuses.items() if k.endswith(":503"))
    result: dict[str, Any] = {
        "minutes": args.minutes,
        "rate_per_s": args.rate,
        "hogs": {"cpu": args.hogs, "io": args.io_hog},
        "shed_503": shed,
        "calls": index,
        "statuses": dict(statuses),
        "server_errors_or_failures": errors,
        "latency_ms": {
            k: {"median": statistics.median(v), "p95": percentile(v, 95), "p99": percentile(v, 99), "n": len(v)}
            for k, v in latencies.items()
            if v
        },
        "server_side_hook_latency": server_side,
        "rss_kib_over_time": memory,
        "rss_growth_kib_after_first_minute": growth_after_first_minute(memory),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "calls",
                    "statuses",
                    "server_errors_or_failures",
                    "shed_503",
                    "latency_ms",
                    "server_side_hook_latency",
                    "rss_growth_kib_after_first_minute",
                )
            },
            indent=1,
        )
    )
    print("rss (s, KiB):", memory)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
