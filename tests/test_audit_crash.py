"""Durability: a real server under concurrent load is killed with SIGKILL; after a restart, every call that
got a 200 is in the audit log and the hash chain verifies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds_service.audit.store import SqlAuditStore
from cds_service.knowledge import Knowledge
from tests.support import SIGN, free_port, hook_request, start_serve


def _start(data: Path, port: int) -> subprocess.Popen[bytes]:
    return start_serve(port, {"CDS_DATA_DIR": str(data)}, ready_path="/cds-services")


@pytest.mark.e2e
def test_sigkill_under_load_loses_no_answered_call(tmp_path: Path, knowledge: Knowledge) -> None:
    port = free_port()
    server = _start(tmp_path, port)
    base = hook_request(knowledge, "partner-missing")
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                body: dict[str, Any] = {**base, "hookInstance": str(uuid.uuid4())}
                try:
                    response = http.post(
                        f"http://127.0.0.1:{port}/cds-services/{SIGN}",
                        content=json.dumps(body),
                        headers={"Content-Type": "application/json"},
                    )
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    with lock:
                        answered.append(body["hookInstance"])

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 15
    while len(answered) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(server.pid, signal.SIGKILL)  # the whole process group: master and workers, mid-flight
    server.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert len(answered) >= 50, "too few calls answered before the kill to test anything"

    restarted = _start(tmp_path, port)  # recovers the SQLite WAL and replays any spool
    try:
        httpx.post(f"http://127.0.0.1:{port}/cds-services/{SIGN}", json={**base, "hookInstance": "after-restart"})
    finally:
        os.killpg(restarted.pid, signal.SIGTERM)
        restarted.wait(timeout=15)

    store = SqlAuditStore(f"sqlite:///{tmp_path / 'cds-audit.sqlite3'}", tmp_path / "audit-spool.jsonl")
    recorded = {r["hookInstance"] for r in store.records("invocation")}
    result = store.verify()
    store.close()
    missing = set(answered) - recorded
    assert not missing, f"{len(missing)} answered calls are not in the audit log"
    assert "after-restart" in recorded
    assert result.ok, result.problem
