"""PostgreSQL made unreachable mid-run (a TCP proxy in front of it is cut): records go to the spool,
cards are still served, and the records are replayed in order when the database is back."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from cds_service.audit.records import InvocationRecord
from cds_service.audit.store import SqlAuditStore
from tests.support import SIGN, reset_postgres


class Proxy:
    """A TCP forwarder on a fixed local port that can be cut and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: socket.socket | None = None
        self._links: list[socket.socket] = []

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._links += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def cut(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            self._server.close()
            self._server = None
        for link in self._links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
                link.close()
        self._links.clear()


@pytest.fixture
def proxied_url() -> Iterator[tuple[str, Proxy]]:
    url = os.environ.get("CDS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CDS_TEST_POSTGRES_URL is not set")
    reset_postgres(url)
    parsed = make_url(url)
    proxy = Proxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    proxy.start()
    yield parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.cut()


def test_postgres_outage_spools_and_replays_in_order(proxied_url: tuple[str, Proxy], tmp_path: Path) -> None:
    url, proxy = proxied_url
    store = SqlAuditStore(url, tmp_path / "spool.jsonl", busy_timeout_ms=1000)

    def call(index: int) -> None:
        store.record_invocation(
            InvocationRecord(
                service_id=SIGN, received_at=datetime.now(UTC), hook_instance=f"h-{index}", http_status=200
            )
        )

    call(0)
    proxy.cut()
    call(1)
    call(2)
    assert store.spool.depth() == 2
    proxy.start()
    call(3)
    assert store.spool.depth() == 0
    assert [r["hookInstance"] for r in store.records("invocation")] == ["h-0", "h-1", "h-2", "h-3"]
    assert store.verify().ok
    store.close()
