"""Instructions per hook call, counted by valgrind: a figure that does not drift with the host.

Wall-clock and CPU time on a shared host move by a factor of two within an hour, so two versions of the code
are compared here by the instructions a call executes. The full app (FastAPI, middleware, the pipeline, the
audit write to a SQLite store) serves the realistic order-sign call in one process through ASGI, without
HTTP. Two runs under ``valgrind --tool=callgrind`` differ only in the number of calls after the warm-up; the
difference divided by the calls is the figure (start-up cancels out). Both runs use PYTHONHASHSEED=0.

    .venv/bin/python bench/instructions.py [--calls 150] [--warmup 30]     # about 3 minutes on 2 cores
    .venv/bin/python bench/instructions.py --floor                         # the floor app, the same call
    .venv/bin/python bench/instructions.py --child --calls 20              # the calls alone, no valgrind

Prints the figure and writes bench/results/instructions.json (``instructions-floor.json`` with ``--floor``). The
build in use (compiled or from source, ``cds_service.native``) is recorded with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run_calls(calls: int, warmup: int, floor: bool = False) -> int:
    """Serve ``warmup + calls`` realistic calls through the app in this process (``floor``: through
    ``bench/floor_app.py``, which only parses the body); returns the calls answered 200 with no cards (every one
    of them, or it raises)."""
    os.environ.update(
        CDS_DATA_DIR=tempfile.mkdtemp(prefix="cds-instructions-"), CDS_AUTH_REQUIRED="false", CDS_LOG_LEVEL="WARNING"
    )
    os.environ.pop("CDS_AUDIT_DB_URL", None)
    import orjson

    from bench.order_sign_latency import SERVICE
    from bench.run_all import realistic_body
    from cds_service.app import create_app
    from cds_service.knowledge import load_knowledge
    from cds_service.settings import Settings

    settings = Settings()
    body = orjson.dumps(realistic_body(load_knowledge(settings.cards_dir, settings.site_config)))
    if floor:
        from bench import floor_app

        app = floor_app.app
    else:
        app = create_app(settings, freeze_heap=True)
    path = f"/cds-services/{SERVICE}"

    async def call() -> None:
        messages: list[dict[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                await asyncio.Event().wait()  # the call never sees a disconnect
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8080),
            "state": {},
        }
        await app(scope, receive, send)
        answer = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        if messages[0]["status"] != 200 or orjson.loads(answer).get("cards") != []:
            raise RuntimeError(f"the benchmark call answered {messages[0]['status']}: {answer[:200]!r}")

    async def main() -> None:
        async with app.router.lifespan_context(app):
            for _ in range(warmup + calls):
                await call()

    asyncio.run(main())
    return warmup + calls


def counted(calls: int, warmup: int, floor: bool = False) -> int:
    """Instructions of a child process that makes ``calls`` after ``warmup``, all threads, start-up included."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--calls",
        str(calls),
        "--warmup",
        str(warmup),
        *(["--floor"] if floor else []),
    ]
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=False
    )
    found = re.search(r"Collected\s*:\s*(\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed ({result.returncode}): {result.stderr[-800:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--child", action="store_true", help="only make the calls (what valgrind runs)")
    parser.add_argument("--floor", action="store_true", help="count the floor app (bench/floor_app.py) instead")
    parser.add_argument("--json", type=Path, help="result file (default bench/results/instructions[-floor].json)")
    args = parser.parse_args()
    if args.child:
        print(f"{run_calls(args.calls, args.warmup, args.floor)} calls answered 200 with no cards")
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    from cds_service import native

    with ThreadPoolExecutor(max_workers=2) as pool:  # the two runs are independent: one per core
        baseline, measured = pool.map(lambda n: counted(n, args.warmup, args.floor), (0, args.calls))
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip(),
        "app": "floor" if args.floor else "service",
        "native_modules": native.status,
        "calls": args.calls,
        "warmup": args.warmup,
        "instructions_without_calls": baseline,
        "instructions_with_calls": measured,
        "instructions_per_call": (measured - baseline) / args.calls,
        "command": " ".join([Path(sys.executable).name, "bench/instructions.py", *sys.argv[1:]]),
    }
    path = args.json or REPO / "bench" / "results" / ("instructions-floor.json" if args.floor else "instructions.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    built = "floor app" if args.floor else native.status
    print(f"{result['instructions_per_call'] / 1e6:.2f} M instructions per call ({built}); {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
