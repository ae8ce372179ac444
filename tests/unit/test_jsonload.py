"""JSON bodies and FHIR pages are parsed with the cyclic collector paused, and the collector is left as it
was found, also when the JSON is malformed."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import orjson
import pytest

from cds_service import jsonload

# Containers that hold containers are tracked by the collector: 20,000 of them start many collections.
BIG = orjson.dumps([{"code": {"coding": [{"code": str(i)}]}} for i in range(20_000)])


@pytest.fixture
def collections() -> Iterator[list[int]]:
    started: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    yield started
    gc.callbacks.remove(count)


def test_no_collection_runs_while_parsing(collections: list[int]) -> None:
    assert gc.isenabled()
    orjson.loads(BIG)
    assert collections, "the plain parse must start collections, or this test shows nothing"
    collections.clear()
    parsed = jsonload.loads(BIG)
    during = len(collections)  # read before anything tracked is allocated: that may start the deferred one
    assert during == 0
    assert gc.isenabled()
    assert parsed[19_999] == {"code": {"coding": [{"code": "19999"}]}}


def test_a_paused_collector_stays_paused() -> None:
    gc.disable()
    try:
        assert jsonload.loads(b'{"a": [1]}') == {"a": [1]}
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_malformed_json_raises_and_re_enables_the_collector() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        jsonload.loads(b'{"resourceType": "Bundle", "entry": [' + b"x" * 50)
    assert gc.isenabled()
