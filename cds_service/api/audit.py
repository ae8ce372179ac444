"""The auditor API and web page (``/audit/``), behind auditor authentication.

Every request an auditor makes is recorded in the audit log as an ``auditor-access`` record.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Form, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from markdown_it import MarkdownIt
from starlette.concurrency import run_in_threadpool

from cds_service.api.auditor_auth import COOKIE, SESSION_SECONDS, AuditorDep, issue_session, session_user
from cds_service.api.deps import Runtime, RuntimeDep
from cds_service.audit import export, queries

router = APIRouter(prefix="/audit")
UI = Path(__file__).resolve().parent.parent / "audit_ui"
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")  # html False: record text is escaped


NO_STORE = {"Cache-Control": "no-store"}
"""Audit data holds patient data: never kept in a browser or proxy cache."""
PAGE_HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _json(content: Any) -> Response:
    return Response(orjson.dumps(content), media_type="application/json", headers=NO_STORE)


async def _log(runtime: Runtime, auditor: str, action: str, parameters: dict[str, Any]) -> None:
    clean = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in parameters.items() if v is not None}
    await run_in_threadpool(runtime.audit.record_access, auditor, action, clean)


# -- pages ---------------------------------------------------------------------------------------
@router.get("/login", include_in_schema=False)
async def login_page() -> FileResponse:
    return FileResponse(UI / "login.html", media_type="text/html", headers=PAGE_HEADERS)


@router.post("/login", include_in_schema=False)
async def login(runtime: RuntimeDep, username: Annotated[str, Form()], password: Annotated[str, Form()]) -> Response:
    if not runtime.auditors.verify(username, password):
        await _log(runtime, username[:128], "sign-in refused", {})
        return RedirectResponse("/audit/login?failed=1", status_code=303)
    await _log(runtime, username, "sign-in", {})
    response = RedirectResponse("/audit/", status_code=303)
    response.set_cookie(
        COOKIE,
        issue_session(runtime, username),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=runtime.settings.audit_cookie_secure,
        path="/audit",
    )
    return response


@router.post("/logout", include_in_schema=False)
async def logout() -> Response:
    response = RedirectResponse("/audit/login", status_code=303)
    response.delete_cookie(COOKIE, path="/audit")
    return response


@router.get("/", include_in_schema=False)
async def page(request: Request, runtime: RuntimeDep) -> Response:
    if session_user(runtime, request.cookies.get(COOKIE)) is None:
        return RedirectResponse("/audit/login", status_code=303)
    return FileResponse(UI / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/assets/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    path = (UI / name).resolve()
    if path.parent != UI or not path.is_file() or path.suffix not in (".js", ".css", ".svg"):
        raise HTTPException(status_code=404, detail="no such asset")
    return FileResponse(path)


# -- API -------------------------------------------------------------------------------------------
@router.get("/api/me", summary="The signed-in auditor")
async def me(auditor: AuditorDep) -> Response:
    return _json({"auditor": auditor})


@router.get("/api/invocations", summary="Hook calls, newest first, filtered and paginated")
async def list_invocations(
    runtime: RuntimeDep,
    auditor: AuditorDep,
    start: datetime | None = None,
    end: datetime | None = None,
    patient: str | None = None,
    user: str | None = None,
    service: str | None = None,
    rule: str | None = None,
    indicator: Literal["info", "warning", "critical"] | None = None,
    outcome: Literal["accepted", "overridden", "none"] | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    filters = queries.InvocationFilter(start, end, patient, user, service, rule, indicator, outcome, page, page_size)
    await _log(runtime, auditor, "list invocations", vars(filters))
    return _json(await run_in_threadpool(queries.list_invocations, runtime.audit.engine, filters))


@router.get("/api/invocations/{record_id}", summary="One hook call in full, with the feedback on each card")
async def one_invocation(record_id: str, runtime: RuntimeDep, auditor: AuditorDep) -> Response:
    await _log(runtime, auditor, "read invocation", {"recordId": record_id})
    found = await run_in_threadpool(queries.invocation, runtime.audit.engine, record_id)
    if found is None:
        raise HTTPException(status_code=404, detail="no such invocation")
    for card in found["record"].get("cards", []):
        card["detailHtml"] = _markdown.render(card.get("detail") or "")
    return _json(found)


@router.get("/api/summary", summary="Per rule: cards fired, accepted, overridden (with reasons), no response")
async def summary(
    runtime: RuntimeDep, auditor: AuditorDep, start: datetime | None = None, end: datetime | None = None
) -> Response:
    await _log(runtime, auditor, "rule summary", {"start": start, "end": end})
    return _json(await run_in_threadpool(queries.rule_summary, runtime.audit.engine, start, end))


@router.get("/api/verify", summary="Check the audit log's hash chain")
async def verify(runtime: RuntimeDep, auditor: AuditorDep) -> Response:
    await _log(runtime, auditor, "verify", {})
    result = await run_in_threadpool(runtime.audit.verify)
    return _json(asdict(result))


@router.get("/api/export", summary="Export invocations as NDJSON, CSV or a FHIR Bundle of AuditEvents")
async def export_log(
    runtime: RuntimeDep,
    auditor: AuditorDep,
    format: Literal["ndjson", "csv", "fhir"] = "ndjson",
    start: datetime | None = None,
    end: datetime | None = None,
) -> Response:
    await _log(runtime, auditor, "export", {"format": format, "start": start, "end": end})
    engine = runtime.audit.engine
    if format == "fhir":
        bundle = await run_in_threadpool(export.fhir_bundle, engine, start, end)
        return Response(
            orjson.dumps(bundle),
            media_type="application/fhir+json",
            headers={**NO_STORE, "Content-Disposition": 'attachment; filename="audit-events.json"'},
        )
    if format == "csv":
        return StreamingResponse(
            export.csv_rows(engine, start, end),
            media_type="text/csv",
            headers={**NO_STORE, "Content-Disposition": 'attachment; filename="audit-log.csv"'},
        )
    return StreamingResponse(
        export.ndjson(engine, start, end),
        media_type="application/x-ndjson",
        headers={**NO_STORE, "Content-Disposition": 'attachment; filename="audit-log.ndjson"'},
    )
