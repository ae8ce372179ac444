"""``python -m cds_service audit verify|purge``: check the audit log's hash chain; apply retention."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from cds_service.audit.store import SqlAuditStore
from cds_service.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("verify", help="check the whole chain; name the first altered, removed or reordered record")
    purge = actions.add_parser("purge", help="delete records older than a date (the rest stays verifiable)")
    purge.add_argument("--before", required=True, help="ISO date or time, e.g. 2020-01-01")


def main(args: argparse.Namespace) -> int:
    settings = Settings()
    store = SqlAuditStore(settings.audit_url, settings.audit_spool)
    try:
        if args.action == "verify":
            result = store.verify()
            if result.ok:
                print(f"audit log verified: {result.records} records, chain intact")
                return 0
            print(f"audit log NOT intact after {result.records} good records: {result.problem}")
            return 1
        before = datetime.fromisoformat(args.before)
        before = before if before.tzinfo else before.replace(tzinfo=UTC)
        removed = store.purge(before)
        print(f"purged {removed} records recorded before {before.isoformat()}")
        return 0
    finally:
        store.close()
