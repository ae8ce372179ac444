"""Load shedding: beyond CDS_MAX_CONCURRENT_CALLS a hook call is refused at once (503, Retry-After,
OperationOutcome "throttled") instead of queued, the refusal is recorded, and the slots come back.

The app runs for real through its ASGI interface; the FHIR server edge (respx) holds the fallback calls
open until the test lets them go, so exactly the limit is in flight when the next call arrives."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from cds_service.app import create_app
from cds_service.knowledge import Knowledge
from cds_service.settings import Settings
from tests.conftest import REPO, fixed_clock
from tests.support import SIGN, fallback_request, hook_request

BASE = "https://ehr.example.org/fhir"
EMPTY = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _wait_until(condition: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.mark.anyio
async def test_calls_beyond_the_limit_are_refused_at_once_and_recorded(tmp_path: Path, knowledge: Knowledge) -> None:
    settings = Settings(data_dir=tmp_path / "data", cards_dir=REPO / "cards", max_concurrent_calls=2)
    settings.retry_after_seconds = 3
    app = create_app(settings, clock=fixed_clock)
    gate = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return httpx.Response(200, json=EMPTY)

    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cds.test") as client:
            with respx.mock(assert_all_mocked=True) as router:
                router.route(host="ehr.example.org").mock(side_effect=held)
                url = f"/cds-services/{SIGN}"
                slow = [
                    asyncio.create_task(client.post(url, json=fallback_request(knowledge, "clean-base-order", BASE)))
                    for _ in range(2)
                ]
                await _wait_until(lambda: runtime.admission.active == 2)

                refused = await client.post(url, json=hook_request(knowledge, "clean-base-order"))
                assert refused.status_code == 503
                assert refused.headers["Retry-After"] == "3"
                outcome = refused.json()
                assert outcome["resourceType"] == "OperationOutcome"
                assert outcome["issue"][0]["code"] == "throttled"
                assert not any(task.done() for task in slow), "the held calls must still be in flight"

                gate.set()
                answered = await asyncio.gather(*slow)
                assert [r.status_code for r in answered] == [200, 200]
                assert runtime.admission.active == 0

                again = await client.post(url, json=hook_request(knowledge, "clean-base-order"))
                assert again.status_code == 200

    records = runtime.audit.records("invocation")
    assert sorted(r["httpStatus"] for r in records) == [200, 200, 200, 503]
    shed = next(r for r in records if r["httpStatus"] == 503)
    assert "limit" in shed["error"]["message"]


def test_the_limit_is_a_setting_with_a_sane_floor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_concurrent_calls"):
        Settings(data_dir=tmp_path, max_concurrent_calls=0)
