"""Scale-out against real processes: two replicas (one of them with two uvicorn workers) on one fresh PostgreSQL
database take a few hundred concurrent hook calls and feedback. Every call must be in the audit log exactly once,
in one unbroken hash chain (``audit verify``), with the card index matching the cards answered; and a JWT used on
one replica must be refused by the other (the ``jti`` store is the shared database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from cds_service.app import create_app
from cds_service.audit import tables
from cds_service.knowledge import Knowledge
from cds_service.scenarios import request_from_record
from cds_service.security.jwt_auth import TrustedClient
from cds_service.settings import Settings
from tests.support import REPO, SELECT, SIGN, free_port, scenario, scenario_names

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

CALLS = 240
CLIENT_THREADS = 12
BUSY_WORKER_TICKS = 10
# Both servers' processes (three of them run the migrations at once on an empty database) start in parallel.
START_TIMEOUT_SECONDS = 40


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database of the test's own, created empty and dropped at the end (also when the test fails)."""
    url = os.environ.get("CDS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CDS_TEST_POSTGRES_URL is not set")
    parsed = make_url(url)
    admin: dict[str, Any] = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "dbname": parsed.database or "postgres",
        "autocommit": True,
    }
    if parsed.password:
        admin["password"] = str(parsed.password)
    name = f"cds_scale_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**admin) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**admin) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def _replica(directory: Path, database: str, *, workers: int, env: dict[str, str] | None = None) -> Iterator[Replica]:
    """One ``python -m cds_service serve`` process with its own data directory (and so its own spool)."""
    directory.mkdir(parents=True)
    port = free_port()
    settings = {
        "CDS_AUDIT_DB_URL": database,
        "CDS_DATA_DIR": str(directory / "data"),
        "CDS_AUTH_REQUIRED": "false",
        "CDS_LOG_LEVEL": "warning",
        **(env or {}),
    }
    log = directory / "stderr.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "cds_service", "serve", "--port", str(port), "--workers", str(workers)],
            cwd=REPO,
            env={**os.environ, **settings},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    replica = Replica(f"http://127.0.0.1:{port}", process, log)
    try:
        yield replica
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_ready(replica: Replica) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        assert replica.process.poll() is None, f"server exited at start:\n{replica.stderr()}"
        try:
            answer = requests.get(f"{replica.url}/readyz", timeout=2)
            if answer.status_code == 200 and answer.json()["auditDatabase"] is True:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"{replica.url} not ready:\n{replica.stderr()}"
        time.sleep(0.1)


def _worker_cpu_ticks(supervisor: int) -> dict[int, int]:
    """User + system CPU ticks of each uvicorn worker (spawned child) of a ``--workers N`` server."""
    ticks = {}
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    for child in map(int, children):
        try:
            if b"spawn_main" not in Path(f"/proc/{child}/cmdline").read_bytes():
                continue  # multiprocessing's resource tracker
            fields = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        ticks[child] = int(fields[11]) + int(fields[12])
    return ticks


def _post(url: str, body: bytes) -> requests.Response:
    # A new connection per call, so the kernel spreads them over the workers sharing the listening socket.
    return requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)


@dataclass(frozen=True)
class Answer:
    hook_instance: str
    service_id: str
    status: int
    cards: list[dict[str, Any]]


def _send_hooks(replicas: list[Replica], knowledge: Knowledge, run: str) -> list[Answer]:
    names = scenario_names()
    records = {name: scenario(name) for name in names}
    calls = []
    for index in range(CALLS):
        service_id = (SIGN, SELECT)[(index // len(names)) % 2]
        instance = f"scale-{run}-{index}"
        request = request_from_record(
            records[names[index % len(names)]], knowledge.registry[service_id], hook_instance=instance
        )
        target = replicas[index % len(replicas)]
        calls.append((f"{target.url}/cds-services/{service_id}", json.dumps(request).encode(), instance, service_id))

    def one(call: tuple[str, bytes, str, str]) -> Answer:
        url, body, instance, service_id = call
        response = _post(url, body)
        cards = response.json()["cards"] if response.status_code == 200 else []
        return Answer(instance, service_id, response.status_code, cards)

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        return list(pool.map(one, calls))


def _send_feedback(replicas: list[Replica], answers: list[Answer]) -> dict[str, str]:
    """Feedback on the cards of every third call, sent to the replica that did NOT issue the card."""
    jobs = []
    for index, answer in enumerate(answers):
        if index % 3 or not answer.cards:
            continue
        other = replicas[(index + 1) % len(replicas)]
        items = [
            {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-20T15:05:00Z"}
            for card in answer.cards
        ]
        jobs.append((f"{other.url}/cds-services/{answer.service_id}/feedback", items))

    def one(job: tuple[str, list[dict[str, Any]]]) -> tuple[int, Any, list[dict[str, Any]]]:
        url, items = job
        response = _post(url, json.dumps({"feedback": items}).encode())
        return response.status_code, response.json(), items

    sent: dict[str, str] = {}
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        for status, body, items in pool.map(one, jobs):
            assert status == 200, body
            assert body == {"stored": len(items), "duplicates": 0, "unknownCards": []}
            sent.update({item["card"]: item["outcome"] for item in items})
    return sent


def test_two_replicas_and_two_workers_share_one_audit_chain(
    database_url: str, knowledge: Knowledge, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        replicas = [
            stack.enter_context(_replica(tmp_path / "a", database_url, workers=2)),
            stack.enter_context(_replica(tmp_path / "b", database_url, workers=1)),
        ]
        for replica in replicas:
            _wait_ready(replica)
        cpu_before = _worker_cpu_ticks(replicas[0].process.pid)
        assert len(cpu_before) == 2, "replica a should run two uvicorn workers"

        answers = _send_hooks(replicas, knowledge, uuid.uuid4().hex[:8])
        assert Counter(a.status for a in answers) == {200: CALLS}
        issued = {card["uuid"]: (answer, card) for answer in answers for card in answer.cards}
        assert len(issued) == sum(len(a.cards) for a in answers), "a card uuid was issued twice"
        assert issued, "the scenarios should produce cards"

        feedback = _send_feedback(replicas, answers)
        again = next(iter(feedback))
        duplicate = _post(
            f"{replicas[1].url}/cds-services/{issued[again][0].service_id}/feedback",
            json.dumps(
                {"feedback": [{"card": again, "outcome": "overridden", "outcomeTimestamp": "2026-11-20T15:05:00Z"}]}
            ).encode(),
        )
        assert duplicate.json() == {"stored": 0, "duplicates": 1, "unknownCards": []}

        cpu_after = _worker_cpu_ticks(replicas[0].process.pid)
        # An idle worker uses a tick or two in these seconds; each busy one here used some 40 (0.4 s of CPU).
        busy = [pid for pid in cpu_before if cpu_after.get(pid, 0) - cpu_before[pid] >= BUSY_WORKER_TICKS]
        assert len(busy) == 2, f"both workers of replica a should have served calls: {cpu_before} -> {cpu_after}"
        for replica in replicas:
            ready = requests.get(f"{replica.url}/readyz", timeout=5).json()
            assert ready["spoolDepth"] == 0, f"{replica.url} spooled records: {ready}"

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    tables.audit_record.c.seq,
                    tables.audit_record.c.kind,
                    tables.audit_record.c.hook_instance,
                    tables.audit_record.c.content,
                ).order_by(tables.audit_record.c.seq)
            ).all()
            head = connection.execute(select(tables.chain_head)).one()
            card_rows = connection.execute(select(tables.card_index)).all()
            feedback_rows = connection.execute(select(tables.feedback_index)).all()
    finally:
        engine.dispose()

    assert [row.seq for row in rows] == list(range(1, len(rows) + 1)), "seq has gaps or duplicates"
    assert (head.seq, len(rows)) == (len(rows), CALLS + len(feedback))
    invocations = [row for row in rows if row.kind == "invocation"]
    assert Counter(row.hook_instance for row in invocations) == Counter({a.hook_instance: 1 for a in answers})
    for row in invocations:
        content = json.loads(row.content)
        assert content["httpStatus"] == 200
    recorded_cards = {
        card["uuid"]: (row.hook_instance, card["ruleId"], card["indicator"])
        for row in invocations
        for card in json.loads(row.content)["cards"]
    }
    answered_cards = {
        uuid_: (answer.hook_instance, card["source"]["topic"]["code"], card["indicator"])
        for uuid_, (answer, card) in issued.items()
    }
    assert recorded_cards == answered_cards
    assert {row.card_uuid: (row.hook_instance, row.rule_id, row.indicator, row.service_id) for row in card_rows} == {
        uuid_: (*answered_cards[uuid_], answer.service_id) for uuid_, (answer, _) in issued.items()
    }
    assert len(card_rows) == len(issued)
    assert Counter(row.card_uuid for row in feedback_rows) == Counter(dict.fromkeys(feedback, 1))
    assert Counter(row.kind for row in rows) == {"invocation": CALLS, "feedback": len(feedback)}

    verified = subprocess.run(
        [sys.executable, "-m", "cds_service", "audit", "verify"],
        cwd=REPO,
        env={**os.environ, "CDS_AUDIT_DB_URL": database_url, "CDS_DATA_DIR": str(tmp_path / "verify")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"audit log verified: {len(rows)} records, chain intact" in verified.stdout


def test_jwt_used_on_one_replica_is_refused_by_the_other(
    database_url: str, knowledge: Knowledge, tmp_path: Path
) -> None:
    """tests/test_jwt.py checks this with two servers on one SQLite file; here the shared store is PostgreSQL.
    Replica a is a server process, replica b the app in this test's own process (one start-up less)."""
    from tests.test_jwt import BASE, ES_JWK, ISS, token

    clients = [{"iss": ISS, "jwks": {"keys": [ES_JWK]}}]
    secured = {"CDS_AUTH_REQUIRED": "true", "CDS_PUBLIC_BASE_URL": BASE, "CDS_TRUSTED_CLIENTS": json.dumps(clients)}
    in_process = Settings(
        data_dir=tmp_path / "b",
        cards_dir=REPO / "cards",
        audit_db_url=database_url,
        auth_required=True,
        trusted_clients=[TrustedClient.model_validate(c) for c in clients],
        public_base_url=BASE,
    )
    with (
        _replica(tmp_path / "a", database_url, workers=1, env=secured) as first,
        TestClient(create_app(in_process)) as second,
    ):
        _wait_ready(first)
        bearer = token()
        body = json.dumps(request_from_record(scenario("partner-missing"), knowledge.registry[SIGN])).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {bearer}"}
        path = f"/cds-services/{SIGN}"
        calls: dict[str, Callable[[], int]] = {
            "a": lambda: requests.post(first.url + path, data=body, headers=headers, timeout=30).status_code,
            "b": lambda: second.post(path, content=body, headers=headers).status_code,
        }
        results: dict[str, int] = {}

        def call(name: str) -> None:
            results[name] = calls[name]()

        # Both at once: exactly one replica may accept the token, whichever inserts its jti first.
        threads = [threading.Thread(target=call, args=(name,)) for name in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(results.values()) == [200, 401], results
        for name, again in calls.items():  # and once used, it stays refused everywhere
            assert again() == 401, name

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            seen = connection.execute(select(tables.seen_jti.c.iss)).all()
            refused = [
                json.loads(row.content)
                for row in connection.execute(
                    select(tables.audit_record.c.content).where(tables.audit_record.c.http_status == 401)
                )
            ]
    finally:
        engine.dispose()
    assert [row.iss for row in seen] == [ISS]
    assert len(refused) == 3
    assert all("replay" in record["error"]["reason"] for record in refused)
    assert all(bearer not in json.dumps(record) for record in refused)
