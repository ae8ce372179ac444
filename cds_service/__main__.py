"""``python -m cds_service``: ``serve`` starts the service; ``evaluate`` runs a file through it offline;
``audit`` checks, prunes and exports the audit log; ``fixtures`` and ``send-hook`` are the health-IT kit."""

from __future__ import annotations

import argparse
import sys

from cds_service.cli import audit, evaluate, fixtures, send_hook


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from cds_service.catalogue import CatalogueError
    from cds_service.knowledge import load_knowledge
    from cds_service.settings import Settings
    from cds_service.site import SiteConfigError
    from cds_service.terminology import ValueSetError

    try:
        settings = Settings()
        # Check the knowledge before starting workers, so a bad card or site file is one clear message.
        knowledge = load_knowledge(settings.cards_dir, settings.site_config)
    except ValidationError as exc:
        print(f"invalid CDS_ setting: {exc}", file=sys.stderr)
        return 2
    except (CatalogueError, SiteConfigError, ValueSetError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    print(f"palbociclib CDS service, knowledge {knowledge.version}", file=sys.stderr)
    _clear_metrics_dir()
    from cds_service import logging_setup

    uvicorn.run(
        "cds_service.app:serving_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_seconds,
        log_level=settings.log_level.lower(),
        log_config=logging_setup.logging_config(settings.log_level),
    )
    return 0


def _clear_metrics_dir() -> None:
    """Metrics files of an earlier run would be added to this run's counts (prometheus-client multiprocess)."""
    import os
    from pathlib import Path

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and Path(directory).is_dir():
        for stale in Path(directory).glob("*.db"):
            stale.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cds_service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the CDS Hooks service")
    serve.add_argument("--host", help="interface to listen on (default: CDS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: CDS_PORT or 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (default: CDS_WORKERS or 1)")
    serve.set_defaults(run=_serve)
    evaluation = commands.add_parser("evaluate", help="run a request or a patient's record offline")
    evaluate.add_arguments(evaluation)
    evaluation.set_defaults(run=evaluate.main)
    auditing = commands.add_parser("audit", help="check or prune the audit log")
    audit.add_arguments(auditing)
    auditing.set_defaults(run=audit.main)
    loading = commands.add_parser("fixtures", help="load the clinical scenarios into a FHIR server, or list them")
    fixtures.add_arguments(loading)
    loading.set_defaults(run=fixtures.main)
    simulator = commands.add_parser("send-hook", help="call the service as an EHR (the CDS Hooks Sandbox) would")
    send_hook.add_arguments(simulator)
    simulator.set_defaults(run=send_hook.main)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
