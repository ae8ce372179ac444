"""Every error answers with an OperationOutcome; input never produces a 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cds_service.errors import CdsError, Overloaded, operation_outcome

log = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json"


def validation_details(exc: ValidationError | RequestValidationError) -> list[str]:
    details = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        details.append(f"{where or 'body'}: {error.get('msg')}")
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CdsError)
    async def _cds_error(_: Request, exc: CdsError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        if isinstance(exc, Overloaded):
            headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse(exc.operation_outcome(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        body = operation_outcome("the request is not valid", "invalid", validation_details(exc))
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not-found" if exc.status_code == 404 else "processing"
        body = operation_outcome(str(exc.detail), code)
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", type(exc).__name__)  # no message: it could carry patient data
        return JSONResponse(operation_outcome("internal error", "exception"), status_code=500)
