"""A fault-injecting FHIR endpoint for fault drills and soak runs: latency beyond the deadline, HTTP
errors, connection resets, truncated or malformed JSON, endless ``next`` links and 10,000-entry Bundles.

It answers from a scenario's record held in memory, or forwards to a real FHIR server (``upstream``) and
spoils the answer. The fault is chosen by the FHIR base a hook call names: ``{stub}/fault/<name>/fhir``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from cds_service.fhir.local import LocalFhirStore, searchset

FAULTS = (
    "none",
    "slow",
    "http-401",
    "http-403",
    "http-404",
    "http-500",
    "http-503",
    "reset",
    "truncated",
    "malformed",
    "endless-next",
    "huge",
)

# Faults a client is expected to get past: a connection's first request is answered, and a later request on it
# finds the connection closed (idle-close) or reset (idle-reset) with no answer, as when a server's keep-alive
# timer fires just as the client reuses the connection.
RECOVERABLE_FAULTS = ("idle-close", "idle-reset")


class _QuietServer(ThreadingHTTPServer):
    # socketserver's default backlog of 5 overflows under a hook call's burst of concurrent queries; the
    # connections beyond it wait a second for a SYN retry, which would time the stub, not the service.
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # resets and broken pipes are the faults being injected


class FhirStub:
    def __init__(
        self,
        store: LocalFhirStore | None = None,
        *,
        upstream: str | None = None,
        upstream_token: str | None = None,
        slow_seconds: float = 3.0,
    ) -> None:
        self.upstream_token = upstream_token
        self.store = store
        self.upstream = upstream.rstrip("/") if upstream else None
        self.slow_seconds = slow_seconds
        self.requests = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart
            answered = 0  # requests this connection has had: a handler serves one connection

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stub.requests += 1
                reused = self.answered > 0
                self.answered += 1
                parts = self.path.split("/", 4)  # '', 'fault', name, 'fhir', rest
                fault, rest = (parts[2], parts[4]) if len(parts) == 5 and parts[1] == "fault" else ("none", "")
                stub.answer(self, fault, rest, reused)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def base(self, fault: str = "none") -> str:
        return f"http://127.0.0.1:{self.port}/fault/{fault}/fhir"

    def start(self) -> FhirStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _fetch(self, rest: str) -> dict[str, Any] | None:
        if self.upstream is not None:
            headers = {"Accept": "application/fhir+json"}
            if self.upstream_token:
                headers["Authorization"] = f"Bearer {self.upstream_token}"
            response = httpx.get(f"{self.upstream}/{rest}", headers=headers, timeout=10)
            if response.status_code != 200:
                return None
            found: dict[str, Any] = response.json()
            return found
        assert self.store is not None
        return self.store.query(rest)

    def answer(self, handler: BaseHTTPRequestHandler, fault: str, rest: str, reused: bool = False) -> None:
        def send(status: int, body: bytes, length: int | None = None) -> None:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/fhir+json")
            handler.send_header("Content-Length", str(len(body) if length is None else length))
            handler.end_headers()
            handler.wfile.write(body)

        if fault.startswith("http-"):
            send(int(fault[5:]), b'{"resourceType":"OperationOutcome","issue":[]}')
            return
        if fault == "reset" or (fault == "idle-reset" and reused):
            # Linger 0: closing sends RST. The descriptor is closed at once: ``connection.close()`` would leave it
            # open while the handler's rfile and wfile hold it, waiting for a next request on keep-alive.
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            os.close(handler.connection.detach())
            handler.close_connection = True
            return
        if fault == "idle-close" and reused:
            handler.close_connection = True
            return
        if fault == "slow":
            time.sleep(self.slow_seconds)
        if fault == "endless-next":
            bundle = searchset([], next_url=f"{self.base(fault)}/{rest.split('?')[0]}?page={time.monotonic_ns()}")
            send(200, json.dumps(bundle).encode())
            return
        if fault == "huge":
            entries = [
                {
                    "resourceType": "Observation",
                    "id": f"o{i}",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
                }
                for i in range(10_000)
            ]
            send(200, json.dumps(searchset(entries)).encode())
            return
        answer = self._fetch(rest)
        body = json.dumps(answer).encode() if answer is not None else b'{"resourceType":"OperationOutcome"}'
        if fault == "truncated":
            send(200, body[: len(body) // 2], length=len(body))  # promises more than it sends, then closes
            handler.close_connection = True
            return
        if fault == "malformed":
            send(200, b'{"resourceType": "Bundle", "entry": [' + b"x" * 50)
            return
        send(200 if answer is not None else 404, body)


def main() -> None:
    """``python -m bench.fhir_stub --scenario NAME [--upstream URL]``: serve until killed; prints the port."""
    import argparse
    import sys
    from pathlib import Path

    from cds_service.scenarios import load_json, split_record

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", default="clean-base-order")
    parser.add_argument("--upstream")
    parser.add_argument("--upstream-token")
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    args = parser.parse_args()
    store = None
    if not args.upstream:
        fixtures = Path(__file__).resolve().parent.parent / "fhir_fixtures"
        _, _, record = split_record(load_json(fixtures / f"{args.scenario}.json"))
        store = LocalFhirStore(record)
    stub = FhirStub(store, upstream=args.upstream, upstream_token=args.upstream_token, slow_seconds=args.slow_seconds)
    print(stub.port, flush=True)
    sys.stdout.close()
    stub._server.serve_forever()


if __name__ == "__main__":
    main()
