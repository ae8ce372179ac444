"""The floor: the least a FastAPI app on the same uvicorn can do with a hook call (read the body, parse it,
answer no cards). The service's latency over this app's is the cost of the service's own work.

    .venv/bin/python -m uvicorn bench.floor_app:app --port 8090 --no-access-log
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request, Response

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

NO_CARDS = orjson.dumps({"cards": []})


@app.post("/cds-services/{service_id}")
async def hook(service_id: str, request: Request) -> Response:
    orjson.loads(await request.body())  # parsed, as the service must, then dropped
    return Response(content=NO_CARDS, media_type="application/json")
