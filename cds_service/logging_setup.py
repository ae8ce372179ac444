"""Structured JSON application logs that carry no patient data.

One line per request (request id, method, path, status, latency, and for hook calls the hookInstance, the
service and the rule ids of the cards); start-up and error lines. Only the fields listed in ``ALLOWED`` are
ever written: a field added elsewhere by mistake is dropped, not logged. Patient data belongs in the audit
log, behind authentication, never here.
"""

from __future__ import annotations

import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

import orjson

ALLOWED = frozenset(
    {
        "request_id",
        "method",
        "path",
        "status",
        "latency_ms",
        "hook_instance",
        "service_id",
        "rule_ids",
        "knowledge_version",
        "native_modules",
        "error",
        "spool_depth",
    }
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({key: value for key, value in vars(record).items() if key in ALLOWED})
        return orjson.dumps(line, default=str).decode()


def logging_config(level: str) -> dict[str, Any]:
    """For ``logging.config.dictConfig`` and uvicorn's ``log_config``: JSON lines on stderr; uvicorn's own
    access log is replaced by the service's request line."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "httpx": {"level": "WARNING"},  # request URLs name patients
            "httpcore": {"level": "WARNING"},
        },
    }


def configure(level: str) -> None:
    logging.config.dictConfig(logging_config(level))
