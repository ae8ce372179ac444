"""Servers under test: the service (``python -m cds_service serve``) or the floor app, on a free port, in their own
process group, optionally pinned to one core with taskset; plus a small keep-alive HTTP client for the calls the
benchmark makes itself (checks, the memory run, the FHIR fallback calls).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parent.parent
SERVICE_PATH = "/cds-services/palbociclib-order-sign"


class ServerFailed(RuntimeError):
    pass


class KeepAliveClient:
    """One HTTP/1.1 connection reused for every call, as wrk and an EHR's connection pool do."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self._connection = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self._connection.request(method, path, body=body, headers=headers)
            response = self._connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()  # the next call reconnects
            raise

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> KeepAliveClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def service_command(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "cds_service", "serve", "--port", str(port), "--workers", str(workers)]


def floor_command(port: int, workers: int, log_level: str, app: str = "bench.floor_app:app") -> list[str]:
    """The floor app (or ``app``, e.g. ``bench.floor_audit_app:app``) on the same uvicorn, with the service's
    options: loop and HTTP implementation left to uvicorn's choice ("auto"), no access log (the service replaces
    uvicorn's with its own request line)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        log_level.lower(),
        "--no-access-log",
    ]


def service_ready(url: str) -> bool:
    with KeepAliveClient(url, timeout=2) as client:
        return client.request("GET", "/healthz")[0] == 200


def floor_ready(url: str) -> bool:
    with KeepAliveClient(url, timeout=2) as client:
        return client.request("POST", SERVICE_PATH, b"{}")[0] == 200


def clean_env(**settings: str) -> dict[str, str]:
    """The caller's environment without its CDS_ settings (the embedded defaults are what is measured),
    plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CDS_")}
    env.update(settings)
    return env


@dataclass
class Server:
    command: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    ready: Callable[[str], bool]
    core: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def full_command(self) -> list[str]:
        return ["taskset", "-c", str(self.core), *self.command] if self.core is not None else list(self.command)

    def start(self, timeout_s: float = 90.0) -> Server:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.full_command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: uvicorn's workers go when it is stopped
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(
                    f"{shlex.join(self.full_command)} exited {self.process.returncode}: {self.log_tail()}"
                )
            try:
                if self.ready(self.url):
                    return self
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        self.stop()
        raise ServerFailed(
            f"{shlex.join(self.full_command)} did not answer within {timeout_s:.0f} s: {self.log_tail()}"
        )

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def rss_kib(self) -> int:
        """VmRSS of the server process (with one uvicorn worker, the process that serves)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise ServerFailed("no VmRSS in /proc status")

    def stop(self) -> None:
        if self.process is None:
            return
        # The whole group, even when the leader is gone: uvicorn's worker processes are in it too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
