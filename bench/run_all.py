"""The benchmark suite in one command: closed-loop latency and throughput under wrk (service and floor app, one and two
workers, 1/8/32 connections; the floor with the durable audit write, one worker), a fixed-rate run at 300 calls/s,
the FHIR fallback with injected query latency, and the server's resident memory over 10,000 calls. Server on core 0,
client on core 1.

Writes bench/results/performance.json and the tables of docs/performance.md (see that file for the method).

    .venv/bin/python bench/run_all.py [--quick] [--postgres-url URL]

``--quick`` is a smoke check (seconds per run); its record goes to bench/results/performance-quick.json and the
document is left alone unless ``--doc`` names one. Exit status: 0 when every run was made (targets missed
included), 1 when some run could not be made (its entry in the JSON says why), 2 when wrk or taskset is missing.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import host_probe, perf_report  # noqa: E402
from bench.fallback_timing import run_fallback  # noqa: E402
from bench.order_sign_latency import SCENARIO, SERVICE, free_port  # noqa: E402
from bench.pinned_server import (  # noqa: E402
    SERVICE_PATH,
    KeepAliveClient,
    Server,
    ServerFailed,
    clean_env,
    floor_command,
    floor_ready,
    service_command,
    service_ready,
)
from bench.records import record_as_of_today  # noqa: E402
from bench.wrk_driver import WrkFailed, lua_script, run_wrk, wrk_command  # noqa: E402
from cds_service import native  # noqa: E402
from cds_service.knowledge import Knowledge, load_knowledge  # noqa: E402
from cds_service.scenarios import request_from_record  # noqa: E402

SERVER_CORE, CLIENT_CORE = 0, 1
CONCURRENCY = (1, 8, 32)
WORKERS = (1, 2)
POSTGRES_CONNECTIONS = 8
FLOOR_AUDIT_APP = "bench.floor_audit_app:app"


@dataclass(frozen=True)
class Plan:
    quick: bool
    warmup_s: float
    duration_s: float
    fixed_rate_s: float
    fixed_rate_connections: int
    memory_first: int
    memory_total: int
    fallback_calls: int
    fallback_warmup: int
    fallback_latency_s: float


FULL = Plan(False, 3, 15, 30, 16, 100, 10_000, 30, 3, 0.1)
QUICK = Plan(True, 1, 3, 4, 16, 100, 1_000, 5, 1, 0.1)


class BenchError(RuntimeError):
    """A run that could not be made (the service refused the benchmark's own request, say)."""


def realistic_body(knowledge: Knowledge) -> dict[str, Any]:
    """The realistic-full-record order-sign request, built as bench/order_sign_latency.py builds it."""
    body: dict[str, Any] = request_from_record(
        record_as_of_today(SCENARIO), knowledge.registry[SERVICE], hook_instance="bench"
    )
    return body


def payload_counts(body: dict[str, Any], payload: bytes) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    for value in body.get("prefetch", {}).values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            kinds.update(entry["resource"]["resourceType"] for entry in value.get("entry", []))
    return {
        "scenario": SCENARIO.stem,
        "bytes": len(payload),
        "observations": kinds["Observation"],
        "medicines": kinds["MedicationRequest"] + kinds["MedicationStatement"],
        "conditions": kinds["Condition"],
        "prefetch_resources": dict(sorted(kinds.items())),
    }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _command_output(command: list[str]) -> str:
    try:
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def environment(pinned: bool, log_level: str) -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    wrk_banner = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split()
    return {
        "git_commit": _command_output(["git", "rev-parse", "--short", "HEAD"]) or "unknown",
        "git_dirty": bool(_command_output(["git", "status", "--porcelain", "--untracked-files=no"])),
        "python": platform.python_version(),
        "uvicorn": _version("uvicorn"),
        "fastapi": _version("fastapi"),
        "starlette": _version("starlette"),
        "orjson": _version("orjson"),
        # What uvicorn's "auto" picks, for the service and the floor alike.
        "uvicorn_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "uvicorn_http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "wrk": wrk_banner[1] if len(wrk_banner) > 1 else "unknown",
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "pinning": {"server_core": SERVER_CORE, "client_core": CLIENT_CORE} if pinned else None,
        "log_level": log_level,
        # Whether the service ran its hot-path modules compiled (scripts/build_native.py) or from source.
        "native_modules": native.status,
    }


def _masked(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


class Bench:
    def __init__(self, plan: Plan, workdir: Path, *, pinned: bool, log_level: str, postgres_url: str | None) -> None:
        self.plan = plan
        self.workdir = workdir
        self.pinned = pinned
        self.log_level = log_level
        self.postgres_url = postgres_url
        self.knowledge = load_knowledge(REPO / "cards")
        self.body = realistic_body(self.knowledge)
        self.payload = json.dumps(self.body).encode()
        self.body_path = workdir / "order-sign-body.json"
        self.body_path.write_bytes(self.payload)
        self.closed_script = workdir / "post.lua"
        self.closed_script.write_text(lua_script(self.body_path))
        self.paced_script = workdir / "post-paced.lua"
        self.paced_script.write_text(lua_script(self.body_path, rate=perf_report.TARGET_RATE))
        self.commands: list[str] = []
        self.errors: list[str] = []
        self.answer: dict[str, Any] = {}
        self.probes: list[dict[str, Any]] = []
        self._servers = 0

    @property
    def server_core(self) -> int | None:
        return SERVER_CORE if self.pinned else None

    # -- servers ------------------------------------------------------------------------------
    def server(self, target: str, workers: int, audit_url: str | None = None) -> Server:
        self._servers += 1
        port = free_port()
        core = self.server_core
        log = self.workdir / f"server-{self._servers}.log"
        if target == "floor":
            server = Server(floor_command(port, workers, self.log_level), clean_env(), port, log, floor_ready, core)
            self.commands.append(shlex.join(server.full_command))
            return server
        if target == "floor+audit":
            data = {"CDS_DATA_DIR": str(self.workdir / f"data-{self._servers}")}
            command = floor_command(port, workers, self.log_level, FLOOR_AUDIT_APP)
            server = Server(command, clean_env(**data), port, log, floor_ready, core)
            self.commands.append(f"CDS_DATA_DIR={shlex.quote(data['CDS_DATA_DIR'])} {shlex.join(server.full_command)}")
            return server
        settings = {
            "CDS_DATA_DIR": str(self.workdir / f"data-{self._servers}"),
            "CDS_AUTH_REQUIRED": "false",  # no caller JWTs in the benchmark, as in the other benchmarks
            "CDS_LOG_LEVEL": self.log_level,
        }
        if audit_url:
            settings["CDS_AUDIT_DB_URL"] = audit_url
        server = Server(service_command(port, workers), clean_env(**settings), port, log, service_ready, core)
        shown = " ".join(f"{key}={shlex.quote(_masked(value))}" for key, value in settings.items())
        self.commands.append(f"{shown} {shlex.join(server.full_command)}")
        return server

    def check(self, target: str, url: str) -> None:
        """One call before the load: the server must answer the body as it should, or the run is not made."""
        with KeepAliveClient(url) as client:
            status, answer = client.request("POST", SERVICE_PATH, self.payload)
        if status != 200:
            raise BenchError(f"{target} answered {status} to the benchmark body: {answer[:300]!r}")
        parsed = json.loads(answer)
        if target.startswith("floor"):
            if parsed != {"cards": []}:
                raise BenchError(f"floor answered {answer[:200]!r}")
            return
        if not isinstance(parsed.get("cards"), list):
            raise BenchError(f"service answer holds no cards list: {answer[:200]!r}")
        self.answer = {
            "cards_returned": len(parsed["cards"]),
            "rule_ids": sorted({card.get("source", {}).get("topic", {}).get("code") for card in parsed["cards"]}),
        }

    def load(self, url: str, script: Path, connections: int, duration_s: float) -> dict[str, Any]:
        """wrk, warm-up first (not recorded), then the measured run."""
        core = CLIENT_CORE if self.pinned else None
        target = url + SERVICE_PATH
        warm = wrk_command(target, script, connections=connections, duration_s=self.plan.warmup_s, core=core)
        run_wrk(warm, self.commands)
        # A call still unanswered when the run ends is counted nowhere by wrk; a timeout shorter than the run
        # makes a stalled server show as timeouts instead of as a quiet, empty run.
        timeout_s = min(5.0, max(1.0, duration_s - 1))
        measured = wrk_command(
            target, script, connections=connections, duration_s=duration_s, timeout_s=timeout_s, core=core
        )
        before = host_probe.core_times(self.server_core)
        record = run_wrk(measured, self.commands)
        record["server_core_steal_percent"] = host_probe.steal_percent(before, host_probe.core_times(self.server_core))
        return record

    def probe(self, label: str) -> None:
        """The host's speed (on the server's core) and the data disk's fdatasync, before the runs ``label`` names,
        while no server is busy."""
        try:
            self.probes.append(host_probe.probe(label, self.server_core, self.workdir))
        except (OSError, subprocess.CalledProcessError, ValueError) as exc:
            self.errors.append(f"host probe before {label}: {exc}")

    # -- the runs -----------------------------------------------------------------------------
    def measure_servers(
        self,
        targets: tuple[tuple[str, str | None], ...],
        workers: int,
        concurrency: tuple[int, ...],
        audit_url: str | None = None,
    ) -> list[dict[str, Any]]:
        """Each (target, audit) on its own server, all started first and measured in turn at each concurrency:
        the service and the floor of one ratio run seconds apart, not minutes, so that the host's drift (its
        speed moves by a factor of two within an hour) falls less between them. An idle server takes no CPU."""
        servers: dict[str, Server] = {}
        runs: list[dict[str, Any]] = []
        labels = {target: {"target": target, "workers": workers, "audit": audit} for target, audit in targets}
        try:
            for target, _ in targets:
                try:
                    server = self.server(target, workers, audit_url).start()
                except ServerFailed as exc:
                    self.errors.append(str(exc))
                    runs += [
                        {**labels[target], "connections": c, "error": f"server did not start: {exc}"}
                        for c in concurrency
                    ]
                    continue
                servers[target] = server
                try:
                    self.check(target, server.url)
                except (BenchError, OSError, ValueError) as exc:
                    self.errors.append(str(exc))
                    servers.pop(target).stop()
                    runs.append({**labels[target], "error": str(exc)})
            for connections in concurrency:
                for target, server in servers.items():
                    try:
                        record = self.load(server.url, self.closed_script, connections, self.plan.duration_s)
                    except WrkFailed as exc:
                        self.errors.append(str(exc))
                        runs.append({**labels[target], "connections": connections, "error": str(exc)})
                        continue
                    runs.append({**labels[target], "connections": connections, **record})
                    _progress(runs[-1])
        finally:
            for server in servers.values():
                server.stop()
        return runs

    def closed_loop(self) -> list[dict[str, Any]]:
        runs = []
        for workers in WORKERS:
            targets: tuple[tuple[str, str | None], ...] = (("service", "sqlite"), ("floor", None))
            if workers == 1:
                targets += (("floor+audit", "sqlite"),)
            self.probe(f"closed loop, {workers} worker(s)")
            runs += self.measure_servers(targets, workers, CONCURRENCY)
        if self.postgres_url:
            self.probe("closed loop, PostgreSQL")
            runs += self.measure_servers(
                (("service", "postgresql"),), 1, (POSTGRES_CONNECTIONS,), audit_url=self.postgres_url
            )
        return runs

    def fixed_rate(self) -> dict[str, Any]:
        connections = self.plan.fixed_rate_connections
        self.probe("fixed rate")
        with self.server("service", 1) as server:
            self.check("service", server.url)
            record = self.load(server.url, self.paced_script, connections, self.plan.fixed_rate_s)
        fixed = {"target_rps": perf_report.TARGET_RATE, "connections": connections, "workers": 1, "audit": "sqlite"}
        print(
            f"fixed rate {fixed['target_rps']:g}/s: achieved {record['throughput_rps']}/s, "
            f"p99 {record['latency_ms']['p99']} ms, failures {record['failures']}",
            flush=True,
        )
        return {**fixed, **record}

    def fallback(self) -> dict[str, Any]:
        with self.server("service", 1) as server:
            self.check("service", server.url)
            result = run_fallback(
                server.url,
                self.knowledge,
                SCENARIO,
                latency_s=self.plan.fallback_latency_s,
                calls=self.plan.fallback_calls,
                warmup=self.plan.fallback_warmup,
            )
        print(
            f"fallback: {json.dumps(result.get('ratio_total_over_slowest'))}, failures {result['failures']}", flush=True
        )
        return result

    def memory(self) -> dict[str, Any]:
        first, total = self.plan.memory_first, self.plan.memory_total
        statuses: Counter[str] = Counter()
        with self.server("service", 1) as server:
            self.check("service", server.url)
            at_start = server.rss_kib()
            after_first = at_start
            with KeepAliveClient(server.url) as client:
                for index in range(1, total + 1):
                    try:
                        statuses[str(client.request("POST", SERVICE_PATH, self.payload)[0])] += 1
                    except (OSError, http.client.HTTPException) as exc:
                        statuses[type(exc).__name__] += 1
                    if index == first:
                        after_first = server.rss_kib()
            after_total = server.rss_kib()
        failures = sum(count for status, count in statuses.items() if status != "200")
        growth = after_total - after_first
        result = {
            "calls_first": first,
            "calls_total": total,
            "rss_kib_at_start": at_start,
            "rss_kib_after_first": after_first,
            "rss_kib_after_total": after_total,
            "growth_kib": growth,
            "growth_percent": round(100 * growth / after_first, 2),
            "noise_kib": perf_report.MEMORY_NOISE_KIB,
            "statuses": dict(statuses),
            "failures": failures,
            "ok": failures == 0,
        }
        print(f"memory: {after_first} KiB after {first} calls, {after_total} KiB after {total}", flush=True)
        return result

    def section(self, name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return run()
        except (ServerFailed, WrkFailed, BenchError, OSError, ValueError) as exc:
            message = f"{name}: {exc}"
            self.errors.append(message)
            print(message, file=sys.stderr, flush=True)
            return {"error": str(exc)}


def _progress(run: dict[str, Any]) -> None:
    latency = run["latency_ms"]
    if not run["requests"]:
        print(f"{run['target']:<11} workers={run['workers']} c={run['connections']}: no call completed", flush=True)
        return
    print(
        f"{run['target']:<11} workers={run['workers']} audit={run['audit'] or '-':<10} c={run['connections']:<3} "
        f"{run['throughput_rps']:>8.1f}/s  p50 {latency['p50']:.2f}  p95 {latency['p95']:.2f}  "
        f"p99 {latency['p99']:.2f} ms  failures {run['failures']}",
        flush=True,
    )


def _prerequisites(pinned: bool) -> str | None:
    if shutil.which("wrk") is None:
        return "wrk is not installed (apt-get install wrk)"
    if pinned:
        if shutil.which("taskset") is None:
            return "taskset is not installed (util-linux); or run with --no-pin"
        if not {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0):
            return f"cores {SERVER_CORE} and {CLIENT_CORE} are not both available; run with --no-pin"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, a smoke check")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CDS_TEST_POSTGRES_URL"),
        help="also run 1 worker, c=8 with this PostgreSQL audit store (default: CDS_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--json", type=Path, help="result file (default bench/results/performance[-quick].json)")
    parser.add_argument(
        "--doc", type=Path, help="document whose tables to regenerate (default docs/performance.md; none with --quick)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client to cores")
    parser.add_argument("--log-level", default="INFO", help="the service's CDS_LOG_LEVEL (default: its own, INFO)")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    pinned = not args.no_pin
    problem = _prerequisites(pinned)
    if problem:
        print(f"cannot run the benchmark: {problem}", file=sys.stderr)
        return 2
    out = args.json or REPO / "bench" / "results" / ("performance-quick.json" if plan.quick else "performance.json")
    doc = args.doc or (None if plan.quick else REPO / "docs" / "performance.md")
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CORE})  # the driver (and the FHIR stub it hosts) share the client's core

    started = time.monotonic()
    result: dict[str, Any] = {
        "quick": plan.quick,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "invocation": shlex.join(
            [".venv/bin/python", "bench/run_all.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "environment": environment(pinned, args.log_level),
        "settings": {
            **asdict(plan),
            "concurrency": list(CONCURRENCY),
            "workers": list(WORKERS),
            "postgres_connections": POSTGRES_CONNECTIONS,
        },
    }
    with tempfile.TemporaryDirectory(prefix="cds-bench-") as scratch:
        bench = Bench(plan, Path(scratch), pinned=pinned, log_level=args.log_level, postgres_url=args.postgres_url)
        result["payload"] = payload_counts(bench.body, bench.payload)
        result["closed_loop"] = bench.closed_loop()
        if not args.postgres_url:
            result["postgres_skipped"] = "no --postgres-url and no CDS_TEST_POSTGRES_URL"
        result["floor_ratio"] = perf_report.floor_ratios(result["closed_loop"])
        result["fixed_rate"] = bench.section("fixed rate", bench.fixed_rate)
        result["fhir_fallback"] = bench.section("FHIR fallback", bench.fallback)
        result["memory"] = bench.section("memory", bench.memory)
        bench.probe("the end of the run")
        result["host_probes"] = bench.probes
        result["payload"].update(bench.answer)
        result["errors"] = bench.errors
        result["commands"] = [result["invocation"], *bench.commands]
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["targets"] = perf_report.targets(result)

    updated = None
    if doc is not None:
        try:
            updated = perf_report.update_doc(doc.read_text(), perf_report.tables(result))
        except (OSError, ValueError) as exc:
            result["errors"].append(f"{doc}: {exc}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    if doc is not None and updated is not None:
        doc.write_text(updated)
        print(f"updated the tables of {doc}")
    print(perf_report.targets_table(result))
    if result["errors"]:
        print("\nruns that could not be made:\n  " + "\n  ".join(result["errors"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
