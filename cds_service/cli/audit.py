"""``python -m cds_service audit verify|purge|export|hash-password``: check the audit log's hash chain,
apply retention, export it, and make auditor password hashes."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from cds_service.audit import export
from cds_service.audit.auditors import hash_password
from cds_service.audit.store import SqlAuditStore
from cds_service.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("hash-password", help="read a password (prompt or stdin) and print its hash for CDS_AUDITORS")
    exporting = actions.add_parser("export", help="write the log as NDJSON, CSV or a FHIR Bundle of AuditEvents")
    exporting.add_argument("--format", choices=("ndjson", "csv", "fhir"), default="ndjson")
    exporting.add_argument("--output", type=Path, help="file to write (default: standard output)")
    exporting.add_argument("--start", help="from this ISO time")
    exporting.add_argument("--end", help="until this ISO time")
    actions.add_parser("verify", help="check the whole chain; name the first altered, removed or reordered record")
    purge = actions.add_parser("purge", help="delete records older than a date (the rest stays verifiable)")
    purge.add_argument("--before", required=True, help="ISO date or time, e.g. 2020-01-01")


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _export(store: SqlAuditStore, args: argparse.Namespace) -> int:
    start, end = _when(args.start), _when(args.end)
    with open(args.output, "wb") if args.output else sys.stdout.buffer as out:
        if args.format == "fhir":
            out.write(orjson.dumps(export.fhir_bundle(store.engine, start, end), option=orjson.OPT_INDENT_2))
        elif args.format == "csv":
            for chunk in export.csv_rows(store.engine, start, end):
                out.write(chunk.encode())
        else:
            for line in export.ndjson(store.engine, start, end):
                out.write(line)
    return 0


def main(args: argparse.Namespace) -> int:
    if args.action == "hash-password":
        password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        if not password:
            print("no password given", file=sys.stderr)
            return 2
        print(hash_password(password))
        return 0
    settings = Settings()
    store = SqlAuditStore(settings.audit_url, settings.audit_spool)
    try:
        if args.action == "export":
            return _export(store, args)
        if args.action == "verify":
            result = store.verify()
            if result.ok:
                print(f"audit log verified: {result.records} records, chain intact")
                return 0
            print(f"audit log NOT intact after {result.records} good records: {result.problem}")
            return 1
        before = _when(args.before)
        assert before is not None
        removed = store.purge(before)
        print(f"purged {removed} records recorded before {before.isoformat()}")
        return 0
    finally:
        store.close()
