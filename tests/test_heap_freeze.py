"""The served app freezes its start-up heap (the cyclic collector then skips it on every call); apps built
for tests and tools do not, so their garbage stays collectable."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from bench.order_sign_latency import SERVICE
from bench.run_all import realistic_body
from cds_service.app import YOUNG_GC_THRESHOLD, create_app, serving_app
from cds_service.knowledge import load_knowledge
from cds_service.settings import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()  # the test process's own heap must stay collectable
    gc.set_threshold(*threshold)


def test_the_served_app_freezes_what_start_up_built(
    unfrozen: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    app = serving_app()
    assert gc.get_freeze_count() == 0  # at start-up, not when the app object is built
    with TestClient(app) as client:
        frozen = gc.get_freeze_count()
        assert client.get("/healthz").status_code == 200
    # Knowledge, models and the database layer: far more than a handful of objects.
    assert frozen > 10_000
    assert gc.get_threshold()[0] == YOUNG_GC_THRESHOLD


def test_a_served_call_makes_no_young_collection(
    unfrozen: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the default threshold a realistic call set off a young collection nearly every time; each scanned
    the call's parsed body and found no cycle."""
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDS_AUTH_REQUIRED", "false")
    body = orjson.dumps(realistic_body(load_knowledge(Settings().cards_dir, None)))
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    with TestClient(serving_app()) as client:
        for _ in range(3):  # caches warm
            assert client.post(f"/cds-services/{SERVICE}", content=body).json() == {"cards": []}
        gc.callbacks.append(count)
        try:
            for _ in range(10):
                assert client.post(f"/cds-services/{SERVICE}", content=body).status_code == 200
        finally:
            gc.callbacks.remove(count)
    assert collections == []


def test_an_app_built_directly_leaves_the_collector_alone(unfrozen: None, settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == 0


def test_serve_runs_the_freezing_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from cds_service.__main__ import main

    started: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **options: started.append((target, options)))
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    assert main(["serve", "--port", "8999"]) == 0
    [(target, options)] = started
    assert (target, options["factory"]) == ("cds_service.app:serving_app", True)
