"""A FHIR server for timing the service's FHIR fallback: one scenario's record, a fixed latency before every answer,
and the time each query took as the server saw it.

It runs as its own process (``python -m bench.async_fhir_stub --scenario NAME --latency-ms 100 [--port 0]``,
printing its port on the first stdout line) on uvicorn with uvloop and httptools. A burst of concurrent queries is
served by one event loop whose per-query cost is microseconds: every answer is serialised once per URL and kept, and
the latency is an ``asyncio.sleep``. A thread-per-connection server in the benchmark's own process spreads the
start of a 19-query burst over tens of milliseconds, which would time the stub rather than the service.

Searches and reads are answered under ``{base}/fhir/`` exactly as ``cds_service.fhir.local`` answers them (the
service sends GET requests only). ``GET /_timings`` returns ``[[arrival_offset_ms, duration_ms], ...]`` for the
queries finished since the last ``GET /_timings?reset=1``: arrival offsets count from the first arrival, a duration
runs from the arrival to the end of sending the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send

from bench.records import record_as_of_today
from cds_service.fhir.local import LocalFhirStore
from cds_service.scenarios import split_record

REPO = Path(__file__).resolve().parent.parent
BACKLOG = 4096  # a burst of connections must never wait for a SYN retry
FHIR_PREFIX = b"/fhir/"
_HEADERS = [(b"content-type", b"application/fhir+json")]
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _outcome(code: str, text: str) -> bytes:
    return orjson.dumps(
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    )


class StubApp:
    """The ASGI application: FHIR answers after ``latency_s``, and the timing of every one of them."""

    def __init__(self, store: LocalFhirStore, latency_s: float) -> None:
        self.store = store
        self.latency_s = latency_s
        self._latency_ns = round(latency_s * 1e9)
        self._answers: dict[bytes, tuple[int, bytes]] = {}
        self._served: list[tuple[int, int]] = []  # (arrived, finished), perf_counter_ns of this process
        self._in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        arrived = time.perf_counter_ns()
        path: bytes = scope.get("raw_path") or scope["path"].encode()
        if path == b"/_timings":
            await self._timings(scope, send)
            return
        if scope["method"] != "GET":
            await self._send(send, 405, _outcome("not-supported", "only GET is served"), _HEADERS)
            return
        self._in_flight += 1
        try:
            status, body = self._answer(path, scope["query_string"])
            # uvloop's timers have millisecond resolution and may fire early: sleep until the deadline is reached.
            deadline = arrived + self._latency_ns
            while (remaining := deadline - time.perf_counter_ns()) > 0:
                await asyncio.sleep(remaining / 1e9)
            await self._send(send, status, body, _HEADERS)
            self._served.append((arrived, time.perf_counter_ns()))
        finally:
            self._in_flight -= 1

    def _answer(self, path: bytes, query: bytes) -> tuple[int, bytes]:
        key = path + b"?" + query
        cached = self._answers.get(key)
        if cached is None:
            cached = self._answers[key] = self._compute(path, query)
        return cached

    def _compute(self, path: bytes, query: bytes) -> tuple[int, bytes]:
        if not path.startswith(FHIR_PREFIX) or len(path) == len(FHIR_PREFIX):
            return 404, _outcome("not-found", "not a FHIR path of this server")
        relative = path[len(FHIR_PREFIX) :].decode("latin-1")
        if query:
            relative += "?" + query.decode("latin-1")
        try:
            found = self.store.query(relative)
        except (ValueError, IndexError):
            return 400, _outcome("invalid", "search parameters not understood")
        if found is None:
            return 404, _outcome("not-found", "no such resource")
        return 200, orjson.dumps(found)

    async def _timings(self, scope: Scope, send: Send) -> None:
        # Answers still being sent belong to the call just made: wait for them (bounded, should a query hang).
        deadline = time.monotonic() + self.latency_s + 1.0
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        served = list(self._served)
        if parse_qs(scope["query_string"].decode("latin-1")).get("reset") == ["1"]:
            self._served.clear()
        first = min((arrived for arrived, _ in served), default=0)
        pairs = [[(arrived - first) / 1e6, (finished - arrived) / 1e6] for arrived, finished in served]
        await self._send(send, 200, orjson.dumps(pairs), _JSON_HEADERS)

    @staticmethod
    async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def scenario_path(scenario: str) -> Path:
    """A fixture scenario's name (``realistic-full-record``) or the path of a scenario Bundle."""
    if scenario.endswith(".json") or os.sep in scenario:
        return Path(scenario)
    return REPO / "fhir_fixtures" / f"{scenario}.json"


def serve(app: StubApp, port: int) -> None:
    """Listen on 127.0.0.1:``port`` (0: any free port), print the port, serve until SIGTERM or SIGINT."""
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=BACKLOG,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(BACKLOG)  # before the port is printed: a client may connect before uvicorn has started
    print(sock.getsockname()[1], flush=True)
    sys.stdout.close()  # the parent reads the port line and nothing after it
    sys.stdout = sys.stderr
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="realistic-full-record", help="fixture name or Bundle path")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="sleep before every FHIR answer")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    _, _, record = split_record(record_as_of_today(scenario_path(args.scenario)))
    serve(StubApp(LocalFhirStore(record), args.latency_ms / 1000), args.port)


class StubProcess:
    """The stub started as a child process (pinned to ``core`` with taskset when given), for the benchmark."""

    def __init__(self, scenario: Path, latency_s: float, *, core: int | None = None) -> None:
        self.command = [
            sys.executable,
            "-m",
            "bench.async_fhir_stub",
            "--scenario",
            str(scenario),
            "--latency-ms",
            repr(latency_s * 1000),
            "--port",
            "0",
        ]
        if core is not None:
            self.command = ["taskset", "-c", str(core), *self.command]
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: http.client.HTTPConnection | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def start(self, timeout_s: float = 60.0) -> StubProcess:
        self._process = subprocess.Popen(self.command, cwd=REPO, stdout=subprocess.PIPE, start_new_session=True)
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout_s)
        line = self._process.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"{shlex.join(self.command)} printed no port within {timeout_s:.0f} s: {line!r}")
        self.port = int(line)
        self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        return self

    def timings(self, *, reset: bool = True) -> list[tuple[float, float]]:
        """(arrival offset ms, duration ms) of the queries answered since the last reset."""
        assert self._connection is not None
        self._connection.request("GET", "/_timings?reset=1" if reset else "/_timings")
        response = self._connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"/_timings answered {response.status}")
        return [(float(offset), float(duration)) for offset, duration in orjson.loads(body)]

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def __enter__(self) -> StubProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


if __name__ == "__main__":
    main()
