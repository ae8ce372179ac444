"""The benchmark suite's parts that can be checked without load: the wrk Lua script (run in the LuaJIT that wrk
embeds, with wrk's tables stood in for), the parsing of wrk's output, the FHIR stub's per-query timing, the
regeneration of docs/performance.md, and the floor app over a real uvicorn server. No speed is asserted here."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import host_probe, perf_report
from bench.async_fhir_stub import StubProcess
from bench.fallback_timing import service_queries
from bench.pinned_server import ServerFailed
from bench.records import record_as_of_today, reference_time
from bench.run_all import QUICK, Bench, BenchError, realistic_body
from bench.sqlite_writers import PROCESSES
from bench.sqlite_writers import run as run_sqlite_writers
from bench.wrk_driver import MARKER, lua_script, parse_wrk_output, wrk_command
from cds_service.audit.store import SqlAuditStore
from cds_service.cli.evaluate import run as evaluate_call
from cds_service.fhir.local import LocalFhirStore
from cds_service.knowledge import Knowledge
from cds_service.scenarios import split_record
from cds_service.settings import Settings
from tests.support import REPO, uvicorn_in_thread

# Captured from wrk 4.1.0 running the generated script against bench/floor_app.py (1 s, 2 connections).
WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:18931/cds-services/palbociclib-order-sign
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.12ms   14.12ms  93.62ms   92.73%
    Req/Sec   452.00    325.38     1.06k    70.00%
  Latency Distribution
     50%    3.52ms
     75%    7.56ms
     90%   17.75ms
     99%   81.25ms
  462 requests in 1.03s, 61.93KB read
Requests/sec:    448.11
Transfer/sec:     60.07KB

BENCH_JSON {"duration_us": 1031003, "requests": 462, "bytes": 63419, "errors": {"connect": 0, "read": 0, \
"write": 0, "timeout": 0, "status": 0}, "latency_us": {"min": 781, "max": 93619, "mean": 8116.9, "stdev": 14120.1, \
"percentiles": {"50": 3524, "75": 7561, "90": 17748, "95": 33483, "99": 81251, "99.9": 93619}}}
"""

# Captured the same way against a path the floor app does not serve: every answer a 404.
WRK_OUTPUT_404 = """\
Running 1s test @ http://127.0.0.1:18931/nope
  1 threads and 1 connections
  Latency Distribution
     50%  305.00us
     75%    2.32ms
     90%    4.36ms
     99%   33.36ms
  1420 requests in 1.02s, 213.68KB read
  Non-2xx or 3xx responses: 1420
Requests/sec:   1390.15
Transfer/sec:    209.19KB

BENCH_JSON {"duration_us": 1021475, "requests": 1420, "bytes": 218812, "errors": {"connect": 0, "read": 0, \
"write": 0, "timeout": 0, "status": 1420}, "latency_us": {"min": 92, "max": 48462, "mean": 2083.1, "stdev": 5058.9, \
"percentiles": {"50": 305, "75": 2315, "90": 4357, "95": 6638, "99": 33363, "99.9": 47024}}}
"""

LUA_GLOBALSINDEX = -10002  # Lua 5.1 / LuaJIT

# wrk's globals as the script sees them, and io.write captured instead of printed.
WRK_STANDIN = """
wrk = {headers = {}}
captured = {}
io.write = function(...)
  for i = 1, select("#", ...) do captured[#captured + 1] = tostring(select(i, ...)) end
end
"""


class LuaJit:
    """wrk's Lua (LuaJIT 5.1 API) loaded in-process: runs chunks, reads string globals."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("luajit-5.1") or "libluajit-5.1.so.2"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            pytest.skip("LuaJIT, the Lua wrk embeds, is not installed (apt-get install wrk)")
        lib.luaL_newstate.restype = ctypes.c_void_p
        lib.luaL_openlibs.argtypes = [ctypes.c_void_p]
        lib.luaL_loadstring.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.lua_pcall.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.lua_getfield.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
        lib.lua_tolstring.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        lib.lua_tolstring.restype = ctypes.c_char_p
        lib.lua_settop.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.lua_close.argtypes = [ctypes.c_void_p]
        self._lib = lib
        self._state = lib.luaL_newstate()
        lib.luaL_openlibs(self._state)

    def run(self, chunk: str) -> None:
        lib, state = self._lib, self._state
        if lib.luaL_loadstring(state, chunk.encode()) != 0 or lib.lua_pcall(state, 0, 0, 0) != 0:
            error = lib.lua_tolstring(state, -1, None)
            lib.lua_settop(state, 0)
            raise AssertionError(f"Lua error: {error.decode() if error else '?'}")

    def global_string(self, name: str) -> str:
        self._lib.lua_getfield(self._state, LUA_GLOBALSINDEX, name.encode())
        value = self._lib.lua_tolstring(self._state, -1, None)
        self._lib.lua_settop(self._state, 0)
        assert value is not None, f"global {name} is not a string"
        return str(value.decode())

    def close(self) -> None:
        self._lib.lua_close(self._state)


@pytest.fixture
def lua() -> Iterator[LuaJit]:
    runtime = LuaJit()
    runtime.run(WRK_STANDIN)
    yield runtime
    runtime.close()


@pytest.fixture
def body_file(tmp_path: Path, knowledge: Knowledge) -> Path:
    path = tmp_path / "body.json"
    path.write_bytes(json.dumps(realistic_body(knowledge)).encode())
    return path


def test_script_posts_the_body_and_done_prints_the_record(lua: LuaJit, body_file: Path) -> None:
    lua.run(lua_script(body_file))
    lua.run('request_line = wrk.method .. " " .. #wrk.body .. " " .. wrk.headers["Content-Type"]')
    assert lua.global_string("request_line") == f"POST {body_file.stat().st_size} application/json"
    lua.run(
        """
        local stats = {min = 812, max = 41234, mean = 5321.0, stdev = 1200.5}
        function stats:percentile(p) return p * 100 end
        done({duration = 3000000, requests = 600, bytes = 123456,
              errors = {connect = 0, read = 1, write = 0, status = 2, timeout = 0}}, stats, nil)
        output = table.concat(captured)
        """
    )
    record = parse_wrk_output(lua.global_string("output"))
    assert record["requests"] == 600
    assert record["duration_s"] == 3.0
    assert record["throughput_rps"] == 200.0
    assert record["latency_ms"] == {
        "p50": 5.0,
        "p75": 7.5,
        "p90": 9.0,
        "p95": 9.5,
        "p99": 9.9,
        "p99.9": 9.99,
        "min": 0.812,
        "max": 41.234,
        "mean": 5.321,
        "stdev": 1.2,
    }
    assert record["errors"] == {"connect": 0, "read": 1, "write": 0, "timeout": 0, "status": 2}
    assert record["failures"] == 3
    assert record["ok"] is False


def test_paced_script_hands_out_send_slots_at_the_rate(lua: LuaJit, body_file: Path) -> None:
    lua.run(lua_script(body_file, rate=100))  # a slot every 10 ms
    lua.run(
        """
        local waits = {}
        for i = 1, 6 do waits[i] = string.format("%.3f", delay()) end
        waits_text = table.concat(waits, " ")
        """
    )
    waits = [float(value) for value in lua.global_string("waits_text").split()]
    assert waits[0] == 0.0
    assert waits == sorted(waits)
    for index, wait in enumerate(waits):
        # Slot k is k * 10 ms after the first, less the (tiny) time the calls themselves took.
        assert index * 10 - 5 <= wait <= index * 10 + 0.001


def test_unpaced_script_has_no_delay(lua: LuaJit, body_file: Path) -> None:
    lua.run(lua_script(body_file))
    lua.run("has_delay = tostring(delay ~= nil)")
    assert lua.global_string("has_delay") == "false"


def test_script_refuses_a_path_lua_cannot_quote(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be quoted"):
        lua_script(tmp_path / "a]==]b.json")


def test_wrk_command_is_one_pinned_thread(tmp_path: Path) -> None:
    command = wrk_command("http://127.0.0.1:1/x", tmp_path / "s.lua", connections=8, duration_s=15, core=1)
    assert command[:4] == ["taskset", "-c", "1", "wrk"]
    assert {"-t1", "-c8", "-d15s", "--latency"} <= set(command)
    assert wrk_command("http://127.0.0.1:1/x", tmp_path / "s.lua", connections=1, duration_s=3)[0] == "wrk"


def test_captured_wrk_output_parses_into_the_record() -> None:
    record = parse_wrk_output(WRK_OUTPUT)
    assert record["requests"] == 462
    assert record["throughput_rps"] == pytest.approx(448.1, abs=0.1)
    assert record["latency_ms"]["p50"] == 3.524
    assert record["latency_ms"]["p95"] == 33.483
    assert record["latency_ms"]["p99"] == 81.251
    assert record["failures"] == 0
    assert record["ok"] is True


def test_non_2xx_answers_are_failures() -> None:
    record = parse_wrk_output(WRK_OUTPUT_404)
    assert record["errors"]["status"] == 1420
    assert record["failures"] == 1420
    assert record["ok"] is False


def test_a_run_where_no_call_completed_is_not_ok() -> None:
    # What done() prints when the server answered nothing during the run: wrk's empty histogram has sentinels.
    line = MARKER + json.dumps(
        {
            "duration_us": 3012000,
            "requests": 0,
            "bytes": 0,
            "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0},
            "latency_us": {
                "min": -9223372036854775808,
                "max": 0,
                "mean": 0.0,
                "stdev": 0.0,
                "percentiles": {"50": 0, "75": 0, "90": 0, "95": 0, "99": 0, "99.9": 0},
            },
        }
    )
    stalled = {"target": "service", "workers": 2, "audit": "sqlite", "connections": 32, **parse_wrk_output(line)}
    assert stalled["ok"] is False
    assert set(stalled["latency_ms"].values()) == {None}
    floor = {**stalled, "target": "floor", "audit": None, "requests": 10, "ok": True}
    floor["latency_ms"] = dict.fromkeys(stalled["latency_ms"], 1.0)
    assert perf_report.floor_ratios([stalled, floor])[0]["verdict"] == "NO DATA"
    assert "no call completed" in perf_report.latency_table({"closed_loop": [stalled]})


def test_output_without_the_result_line_is_an_error() -> None:
    text_only = WRK_OUTPUT.split(MARKER)[0]
    with pytest.raises(ValueError, match="no result line"):
        parse_wrk_output(text_only)


def test_scenario_records_move_to_today(knowledge: Knowledge) -> None:
    scenario = REPO / "fhir_fixtures" / "realistic-full-record.json"
    reference = reference_time()
    original = json.loads(scenario.read_text())
    moved = record_as_of_today(scenario, today=reference.date() + timedelta(days=30))
    before = [e["resource"].get("effectiveDateTime") for e in original["entry"]]
    after = [e["resource"].get("effectiveDateTime") for e in moved["entry"]]
    pairs = [(b, a) for b, a in zip(before, after, strict=True) if b]
    assert pairs
    for b, a in pairs:
        shifted = datetime.fromisoformat(a.replace("Z", "+00:00")) - datetime.fromisoformat(b.replace("Z", "+00:00"))
        assert shifted == timedelta(days=30)


def test_the_benchmark_call_is_a_clean_call_today(knowledge: Knowledge) -> None:
    """The benchmarks time the call of a clean, fully documented patient: evaluated now (not at the fixtures'
    reference time), its dates moved to today, it answers no cards."""
    evaluation = asyncio.run(
        evaluate_call(knowledge, realistic_body(knowledge), "palbociclib-order-sign", datetime.now(UTC))
    )
    assert evaluation.orders
    assert evaluation.response.cards == []
    assert evaluation.skipped == {}


@pytest.mark.e2e
def test_async_stub_answers_after_the_latency_and_reports_each_query(knowledge: Knowledge) -> None:
    """The stub (its own process) answers one of the service's searches with the scenario's Bundle after the
    injected latency, and /_timings reports every query of a concurrent burst, then starts afresh."""
    scenario = REPO / "fhir_fixtures" / "realistic-full-record.json"
    store = LocalFhirStore(split_record(record_as_of_today(scenario))[2])
    searches = [query for query in service_queries(knowledge, scenario) if "?" in query]
    query = next(query for query in searches if (store.query(query) or {}).get("entry"))
    with StubProcess(scenario, latency_s=0.05) as stub:
        assert stub.timings() == []
        started = time.perf_counter()
        response = httpx.get(f"{stub.base}/{query}", timeout=10)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/fhir+json"
        assert response.json() == store.query(query)
        assert elapsed >= 0.05
        [(offset, duration)] = stub.timings(reset=False)
        assert offset == 0.0
        assert duration >= 50
        assert stub.timings() == [(offset, duration)]  # kept until a reset

        barrier = threading.Barrier(len(searches))
        statuses: list[int] = []

        def search(relative: str) -> None:
            with httpx.Client() as client:
                barrier.wait()
                statuses.append(client.get(f"{stub.base}/{relative}", timeout=10).status_code)

        threads = [threading.Thread(target=search, args=(relative,)) for relative in searches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        burst = stub.timings()
        assert httpx.get(f"{stub.base}/Patient/no-such-patient", timeout=10).status_code == 404
    assert statuses == [200] * len(searches)
    assert len(burst) == len(searches)
    assert min(offset for offset, _ in burst) == 0.0
    assert all(duration >= 50 for _, duration in burst)


def _result() -> dict[str, Any]:
    def run(target: str, workers: int, connections: int, p50_us: int, status_errors: int = 0) -> dict[str, Any]:
        line = MARKER + json.dumps(
            {
                "duration_us": 15_000_000,
                "requests": 3000,
                "bytes": 1,
                "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": status_errors},
                "latency_us": {
                    "min": 1,
                    "max": 9 * p50_us,
                    "mean": p50_us,
                    "stdev": 1,
                    "percentiles": {"50": p50_us, "75": p50_us, "90": p50_us, "95": 2 * p50_us, "99": 3 * p50_us},
                },
            }
        )
        audit = "sqlite" if target == "service" else None
        return {
            "target": target,
            "workers": workers,
            "audit": audit,
            "connections": connections,
            **parse_wrk_output(line),
        }

    closed = [
        {**run("service", 1, 1, 5000), "server_core_steal_percent": 12.5},
        run("floor", 1, 1, 1000),  # ratio 5: MISS
        run("service", 1, 8, 4000),
        run("floor", 1, 8, 2000),  # ratio 2: PASS
        {**run("floor+audit", 1, 1, 2500), "audit": "sqlite"},  # the durable write alone: 2.5 times the floor
        {"target": "service", "workers": 2, "audit": "sqlite", "connections": 1, "error": "server did not start"},
    ]
    fixed = {"target_rps": 300.0, "connections": 16, "workers": 1, "audit": "sqlite", **run("service", 1, 16, 8000)}
    fixed["throughput_rps"] = 299.0
    result: dict[str, Any] = {
        "quick": False,
        "measured_at": "2026-11-22T10:00:00+00:00",
        "elapsed_s": 480.0,
        "environment": {
            "git_commit": "abc1234",
            "git_dirty": False,
            "python": "3.11.7",
            "uvicorn": "0.54.0",
            "fastapi": "0.165.0",
            "starlette": "1.10.0",
            "uvicorn_loop": "uvloop",
            "uvicorn_http": "httptools",
            "wrk": "4.1.0",
            "cpu_model": "Test CPU",
            "cpus": 2,
            "pinning": {"server_core": 0, "client_core": 1},
            "log_level": "INFO",
            "native_modules": "compiled",
        },
        "settings": {"warmup_s": 3, "duration_s": 15, "fixed_rate_s": 30},
        "payload": {
            "scenario": "realistic-full-record",
            "bytes": 76505,
            "observations": 64,
            "medicines": 10,
            "conditions": 8,
            "cards_returned": 0,
        },
        "closed_loop": closed,
        "postgres_skipped": "no --postgres-url and no CDS_TEST_POSTGRES_URL",
        "floor_ratio": perf_report.floor_ratios(closed),
        "fixed_rate": fixed,
        "fhir_fallback": {"error": "server did not start"},
        "memory": {
            "calls_first": 100,
            "calls_total": 10_000,
            "rss_kib_at_start": 110_000,
            "rss_kib_after_first": 112_000,
            "rss_kib_after_total": 113_000,
            "growth_kib": 1000,
            "growth_percent": 0.89,
            "noise_kib": 5120,
            "failures": 0,
            "ok": True,
        },
    }
    result["host_probes"] = [
        {"before": label, "at": "2026-11-22T10:00:00+00:00", "cpu_loop_s": loop, "fdatasync_ms": sync}
        for label, loop, sync in (
            ("closed loop, 1 worker(s)", 0.147, {"p50": 0.12, "p99": 1.41, "max": 2.4, "samples": 200, "pages": 9}),
            ("fixed rate", 0.295, {"p50": 0.35, "p99": 3.37, "max": 52.9, "samples": 200, "pages": 9}),
        )
    ]
    result["targets"] = perf_report.targets(result)
    return result


def test_targets_are_judged_from_the_record() -> None:
    result = _result()
    assert [(row["service_p50_ms"], row["floor_p50_ms"], row["verdict"]) for row in result["floor_ratio"]] == [
        (5.0, 1.0, "MISS"),
        (4.0, 2.0, "PASS"),
    ]
    assert [row.get("floor_audit_ratio") for row in result["floor_ratio"]] == [2.5, None]
    verdicts = [row["verdict"] for row in result["targets"]]
    assert verdicts == ["PASS", "MISS", "NO DATA", "PASS"]  # p99 24 ms at 299/s; worst ratio 5; no fallback; memory
    result["fixed_rate"]["throughput_rps"] = 200.0  # the rate not kept: the p99 does not count
    assert perf_report.targets(result)[0]["verdict"] == "MISS"


def test_a_run_with_failures_is_never_a_pass() -> None:
    result = _result()
    result["fixed_rate"].update(failures=4, ok=False)
    assert perf_report.targets(result)[0]["verdict"] == "MISS"
    assert "4 failures" in perf_report.targets(result)[0]["measured"]


def _prose(text: str) -> str:
    return re.sub(r"(<!-- bench:([\w-]+) -->).*?(<!-- /bench:\2 -->)", r"\1\3", text, flags=re.S)


def test_doc_tables_are_regenerated_between_their_markers() -> None:
    doc = (REPO / "docs" / "performance.md").read_text()
    tables = perf_report.tables(_result())
    assert set(tables) == set(perf_report.SECTIONS)
    updated = perf_report.update_doc(doc, tables)
    assert _prose(updated) == _prose(doc)  # the prose around the tables stays
    for name, table in tables.items():
        assert f"<!-- bench:{name} -->\n{table}\n<!-- /bench:{name} -->" in updated
    assert perf_report.update_doc(updated, tables) == updated
    assert "| service | 2 | sqlite | 1 | not measured |" in updated
    assert "| service | 1 | sqlite | 1 | 200 | 5.00 | 10.00 | 15.00 | 45.00 | 0 | 12.5 |" in updated
    assert "| floor | 1 | - | 1 | 200 | 1.00 | 2.00 | 3.00 | 9.00 | 0 | - |" in updated  # not recorded
    assert "_Not measured: server did not start_" in updated
    assert "| **hot-path modules** | compiled |" in updated
    assert "| 1 | 1 | 5.00 | 1.00 | 5.00 | MISS | 2.50 | 2.50 |" in updated
    assert "| 1 | 8 | 4.00 | 2.00 | 2.00 | PASS | - | - |" in updated
    assert "| **host speed** | calibration loop on the server's core, best of 3: 0.147 to 0.295 s, over 2 probes |" in (
        updated
    )
    assert "p50 0.12 to 0.35 ms, p99 1.41 to 3.37 ms, max 2.4 to 52.9 ms, over 2 probes |" in updated


def test_a_record_without_host_probes_says_so() -> None:
    result = _result()
    del result["host_probes"]  # records made before the probes
    table = perf_report.environment_table(result)
    assert "| **host speed** | not recorded |" in table
    assert "| **fdatasync on the data disk** | not recorded |" in table


_STAT = """cpu  100 0 50 800 10 0 5 35 7 0
cpu0 60 0 30 380 5 0 3 22 7 0
cpu1 40 0 20 420 5 0 2 13 0 0
intr 12345
"""


def test_stolen_time_is_read_per_core_from_proc_stat() -> None:
    assert host_probe.core_times(0, _STAT) == (22, 500)  # guest time is inside user time, not added again
    assert host_probe.core_times(None, _STAT) == (35, 1000)
    assert host_probe.core_times(5, _STAT) is None
    assert host_probe.steal_percent((22, 500), (72, 1500)) == 5.0
    assert host_probe.steal_percent(None, (72, 1500)) is None
    assert host_probe.steal_percent((22, 500), (22, 500)) is None  # no tick between the readings
    live = host_probe.core_times(min(os.sched_getaffinity(0)))
    assert live is not None
    assert 0 <= live[0] <= live[1]


def test_host_probe_times_the_loop_and_the_disk(tmp_path: Path) -> None:
    core = min(os.sched_getaffinity(0))
    assert 0 < host_probe.cpu_loop_seconds(core, repeats=1) < 60
    synced = host_probe.fdatasync_ms(tmp_path, samples=20)
    assert 0 < synced["p50"] <= synced["p99"] <= synced["max"]
    assert (synced["samples"], synced["pages"]) == (20, host_probe.COMMIT_PAGES)
    assert list(tmp_path.iterdir()) == []  # the probe's file is gone


def test_doc_without_a_marker_is_an_error() -> None:
    with pytest.raises(ValueError, match="memory"):
        perf_report.update_doc("<!-- bench:latency -->\nx\n<!-- /bench:latency -->\n", {"latency": "t", "memory": "t"})


@pytest.fixture
def floor_url() -> Iterator[str]:
    with uvicorn_in_thread("bench.floor_app:app", access_log=False) as url:
        yield url


@pytest.mark.e2e
def test_floor_app_answers_no_cards_to_the_realistic_body(floor_url: str, body_file: Path) -> None:
    response = httpx.post(
        f"{floor_url}/cds-services/palbociclib-order-sign",
        content=body_file.read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json() == {"cards": []}
    assert len(body_file.read_bytes()) > 50_000  # the realistic prefetch, not a stub body


def _post_and_read_store(app: str, body: bytes, calls: int, **config: Any) -> tuple[list[httpx.Response], Any, Any]:
    """``app`` served by uvicorn, ``body`` posted ``calls`` times; then, while it still runs, the invocation records
    of the audit store of ``CDS_DATA_DIR`` and the result of verifying its chain."""
    with uvicorn_in_thread(app, access_log=False, **config) as url:
        answers = [
            httpx.post(
                f"{url}/cds-services/palbociclib-order-sign", content=body, headers={"Content-Type": "application/json"}
            )
            for _ in range(calls)
        ]
        store = SqlAuditStore(Settings().audit_url)
        try:
            return answers, store.records("invocation"), store.verify()
        finally:
            store.close()


@pytest.mark.e2e
def test_floor_audit_app_commits_a_record_before_it_answers(
    body_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "floor-audit"))
    body = body_file.read_bytes()
    # The store is read while the server runs: each answer waited for its record's commit.
    answers, records, verified = _post_and_read_store("bench.floor_audit_app:app", body, 3)
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"cards": []})] * 3
    sent = json.loads(body)
    assert [(r["serviceId"], r["hookInstance"], r["patientId"]) for r in records] == [
        ("palbociclib-order-sign", sent["hookInstance"], sent["context"]["patientId"])
    ] * 3
    assert verified.ok


@pytest.mark.e2e
def test_no_audit_app_evaluates_and_records_nothing(
    body_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The baseline of bench/audit_write_latency.py: the whole service, with hook calls left out of the audit log
    (the hook path submits its record, so a store that only overrode ``record_invocation`` still wrote them)."""
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "no-audit"))
    monkeypatch.setenv("CDS_AUTH_REQUIRED", "false")
    answers, records, _ = _post_and_read_store("bench.no_audit_app:create", body_file.read_bytes(), 2, factory=True)
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"cards": []})] * 2
    assert answers[0].headers["X-Knowledge-Version"]  # answered by the service, not a stub
    assert records == []


def test_sqlite_writers_bench_runs_both_arms_and_the_chain_verifies() -> None:
    for locked in (False, True):
        result = run_sqlite_writers(locked, rate=200.0, records=20)
        assert result["writer_lock"] is locked
        assert result["records"] == PROCESSES * 20
        assert result["chain_verifies"] is True
        assert 0 < result["write_ms"]["p50"] <= result["write_ms"]["p99"] <= result["write_ms"]["max"]


@pytest.mark.parametrize("app", [(), ("--floor",)], ids=["service", "floor"])
def test_instruction_count_calls_are_the_clean_benchmark_call(app: tuple[str, ...]) -> None:
    """What valgrind counts in bench/instructions.py: the realistic call through the full app (or the floor app),
    every answer a 200 with no cards (the child refuses anything else)."""
    result = subprocess.run(
        [sys.executable, "bench/instructions.py", "--child", "--calls", "3", "--warmup", "1", *app],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "4 calls answered 200 with no cards"


_TARGETS: tuple[tuple[str, str | None], ...] = (("service", "sqlite"), ("floor", None), ("floor+audit", "sqlite"))


class _FakeServer:
    def __init__(self, target: str, log: list[tuple[str, ...]], fails: bool) -> None:
        self.target, self.log, self.fails = target, log, fails
        self.url = f"http://{target}"

    def start(self) -> _FakeServer:
        if self.fails:
            raise ServerFailed(f"{self.target} exited 1")
        self.log.append(("start", self.target))
        return self

    def stop(self) -> None:
        self.log.append(("stop", self.target))


class _FakeBench(Bench):
    """The closed loop's order of work, without servers or wrk."""

    def __init__(self, workdir: Path, broken: str | None = None, refused: str | None = None) -> None:
        super().__init__(QUICK, workdir, pinned=False, log_level="INFO", postgres_url=None)
        self.log: list[tuple[str, ...]] = []
        self.broken, self.refused = broken, refused

    def server(self, target: str, workers: int, audit_url: str | None = None) -> Any:
        return _FakeServer(target, self.log, fails=target == self.broken)

    def check(self, target: str, url: str) -> None:
        if target == self.refused:
            raise BenchError(f"{target} answered 500 to the benchmark body")

    def probe(self, label: str) -> None:
        self.log.append(("probe", label))

    def load(self, url: str, script: Path, connections: int, duration_s: float) -> dict[str, Any]:
        self.log.append(("load", url.removeprefix("http://"), str(connections)))
        latency = {"p50": 1.0, "p95": 2.0, "p99": 3.0}
        return {"requests": 10, "throughput_rps": 100.0, "latency_ms": latency, "failures": 0, "ok": True}


def test_closed_loop_measures_service_and_floors_in_turn_at_each_concurrency(tmp_path: Path) -> None:
    bench = _FakeBench(tmp_path)
    runs = bench.measure_servers(_TARGETS, 1, (1, 8))
    assert bench.log == [
        ("start", "service"),
        ("start", "floor"),
        ("start", "floor+audit"),
        ("load", "service", "1"),
        ("load", "floor", "1"),
        ("load", "floor+audit", "1"),
        ("load", "service", "8"),
        ("load", "floor", "8"),
        ("load", "floor+audit", "8"),
        ("stop", "service"),
        ("stop", "floor"),
        ("stop", "floor+audit"),
    ]
    assert [(r["target"], r["audit"], r["connections"]) for r in runs] == [
        ("service", "sqlite", 1),
        ("floor", None, 1),
        ("floor+audit", "sqlite", 1),
        ("service", "sqlite", 8),
        ("floor", None, 8),
        ("floor+audit", "sqlite", 8),
    ]


def test_closed_loop_measures_the_others_when_a_server_fails(tmp_path: Path) -> None:
    bench = _FakeBench(tmp_path, broken="floor", refused="floor+audit")
    runs = bench.measure_servers(_TARGETS, 1, (1, 8))
    assert bench.log == [
        ("start", "service"),
        ("start", "floor+audit"),
        ("stop", "floor+audit"),  # refused the benchmark's body: not measured
        ("load", "service", "1"),
        ("load", "service", "8"),
        ("stop", "service"),
    ]
    errors = [(r["target"], r.get("connections"), r["error"]) for r in runs if "error" in r]
    assert errors == [
        ("floor", 1, "server did not start: floor exited 1"),
        ("floor", 8, "server did not start: floor exited 1"),
        ("floor+audit", None, "floor+audit answered 500 to the benchmark body"),
    ]
    assert len(bench.errors) == 2


def test_the_host_is_probed_before_each_group_while_no_server_runs(tmp_path: Path) -> None:
    bench = _FakeBench(tmp_path)
    bench.closed_loop()
    probes = [index for index, entry in enumerate(bench.log) if entry[0] == "probe"]
    assert [bench.log[index] for index in probes] == [
        ("probe", "closed loop, 1 worker(s)"),
        ("probe", "closed loop, 2 worker(s)"),
    ]
    for index in probes:
        started = sum(1 for entry in bench.log[:index] if entry[0] == "start")
        stopped = sum(1 for entry in bench.log[:index] if entry[0] == "stop")
        assert started == stopped  # no server up while the host is timed


def test_a_failed_host_probe_is_recorded_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(label: str, core: int | None, directory: Path) -> dict[str, Any]:
        raise subprocess.CalledProcessError(1, ["taskset"])

    monkeypatch.setattr(host_probe, "probe", broken)
    bench = Bench(QUICK, tmp_path, pinned=False, log_level="INFO", postgres_url=None)
    bench.probe("fixed rate")
    assert bench.probes == []
    assert bench.errors == ["host probe before fixed rate: Command '['taskset']' returned non-zero exit status 1."]
