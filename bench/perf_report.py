"""Targets (PASS/MISS) and the Markdown tables of docs/performance.md, from the record bench/run_all.py writes.

The document keeps its prose; each table sits between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` and is
replaced on every run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

P99_LIMIT_MS = 25.0
TARGET_RATE = 300.0
RATE_KEPT = 0.95  # the rate counts as kept at 95 % of the target or more
FLOOR_RATIO_LIMIT = 3.0
FALLBACK_RATIO_LIMIT = 1.3
MEMORY_NOISE_KIB = 5 * 1024

SECTIONS = ("environment", "latency", "floor", "fixed-rate", "fallback", "memory", "targets")
NO_DATA = "NO DATA"


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def floor_ratios(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Service p50 over floor p50 for each worker count and concurrency both were measured at (SQLite audit)."""
    measured = {
        (run["target"], run["workers"], run["connections"]): run
        for run in runs
        if "error" not in run and run.get("audit") in ("sqlite", None)
    }
    rows = []
    for (target, workers, connections), service in sorted(measured.items(), key=lambda item: item[0][1:]):
        floor = measured.get(("floor", workers, connections))
        if target != "service" or floor is None:
            continue
        valid = service["ok"] and floor["ok"]
        ratio = service["latency_ms"]["p50"] / floor["latency_ms"]["p50"] if valid else None
        row = {
            "workers": workers,
            "connections": connections,
            "service_p50_ms": service["latency_ms"]["p50"],
            "floor_p50_ms": floor["latency_ms"]["p50"],
            "ratio": round(ratio, 2) if ratio is not None else None,
            "verdict": _verdict(ratio is not None and ratio <= FLOOR_RATIO_LIMIT) if valid else NO_DATA,
        }
        durable = measured.get(("floor+audit", workers, connections))
        if durable is not None and durable["ok"] and floor["ok"]:
            # The floor with the durable write over the floor: the share of the ratio the write alone takes.
            row["floor_audit_p50_ms"] = durable["latency_ms"]["p50"]
            row["floor_audit_ratio"] = round(durable["latency_ms"]["p50"] / floor["latency_ms"]["p50"], 2)
        rows.append(row)
    return rows


def targets(result: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    fixed = result.get("fixed_rate") or {}
    if "latency_ms" in fixed and not fixed["requests"]:
        rows.append(
            {
                "target": f"p99 ≤ {P99_LIMIT_MS:g} ms at {TARGET_RATE:g} calls/s",
                "measured": "no call completed",
                "verdict": "MISS",
            }
        )
    elif "latency_ms" in fixed:
        kept = fixed["throughput_rps"] >= RATE_KEPT * fixed["target_rps"]
        passed = fixed["ok"] and kept and fixed["latency_ms"]["p99"] <= P99_LIMIT_MS
        measured = f"p99 {fixed['latency_ms']['p99']:.2f} ms at {fixed['throughput_rps']:.0f}/s"
        if not fixed["ok"]:
            measured += f", {fixed['failures']} failures"
        rows.append(
            {
                "target": f"p99 ≤ {P99_LIMIT_MS:g} ms at {TARGET_RATE:g} calls/s",
                "measured": measured,
                "verdict": _verdict(passed),
            }
        )
    else:
        rows.append(
            {
                "target": f"p99 ≤ {P99_LIMIT_MS:g} ms at {TARGET_RATE:g} calls/s",
                "measured": "not measured",
                "verdict": NO_DATA,
            }
        )
    ratios = [row for row in result.get("floor_ratio", []) if row["ratio"] is not None]
    if ratios:
        worst = max(ratios, key=lambda row: row["ratio"])
        passed = all(row["verdict"] == "PASS" for row in result["floor_ratio"])
        rows.append(
            {
                "target": f"service / floor p50 ≤ {FLOOR_RATIO_LIMIT:g} (every concurrency)",
                "measured": f"worst {worst['ratio']:.2f} ({worst['workers']} worker(s), c={worst['connections']})",
                "verdict": _verdict(passed),
            }
        )
    else:
        rows.append(
            {"target": f"service / floor p50 ≤ {FLOOR_RATIO_LIMIT:g}", "measured": "not measured", "verdict": NO_DATA}
        )
    fallback = result.get("fhir_fallback") or {}
    if "ratio_total_over_slowest" in fallback:
        ratio = fallback["ratio_total_over_slowest"]["p50"]
        rows.append(
            {
                "target": f"fallback total ≤ {FALLBACK_RATIO_LIMIT:g} x slowest query (median call)",
                "measured": f"{ratio:.2f} (max {fallback['ratio_total_over_slowest']['max']:.2f}), "
                f"{fallback['failures']} failures",
                "verdict": _verdict(fallback["ok"] and ratio <= FALLBACK_RATIO_LIMIT),
            }
        )
    else:
        rows.append(
            {
                "target": f"fallback total ≤ {FALLBACK_RATIO_LIMIT:g} x slowest query",
                "measured": "not measured",
                "verdict": NO_DATA,
            }
        )
    memory = result.get("memory") or {}
    if "growth_kib" in memory:
        rows.append(
            {
                "target": f"RSS growth within noise (≤ {MEMORY_NOISE_KIB // 1024} MiB)",
                "measured": f"{memory['growth_kib'] / 1024:+.1f} MiB from call {memory['calls_first']:,} "
                f"to call {memory['calls_total']:,}",
                "verdict": _verdict(memory["ok"] and memory["growth_kib"] <= MEMORY_NOISE_KIB),
            }
        )
    else:
        rows.append({"target": "RSS growth within noise", "measured": "not measured", "verdict": NO_DATA})
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _error_note(section: Any) -> str | None:
    if not section:
        return "_Not measured._"
    if "error" in section:
        return f"_Not measured: {section['error']}_"
    if "skipped" in section:
        return f"_Skipped: {section['skipped']}_"
    return None


def _span(values: list[float], unit: str, digits: int) -> str:
    low, high = min(values), max(values)
    return f"{low:.{digits}f} {unit}" if low == high else f"{low:.{digits}f} to {high:.{digits}f} {unit}"


def host_rows(probes: list[dict[str, Any]] | None) -> list[list[str]]:
    """The host probes of the run (bench/host_probe.py), as ranges over the probes."""
    if not probes:
        return [["host speed", "not recorded"], ["fdatasync on the data disk", "not recorded"]]
    loops = [p["cpu_loop_s"] for p in probes]
    syncs = [p["fdatasync_ms"] for p in probes]
    count = f"over {len(probes)} probes" if len(probes) > 1 else "one probe"
    return [
        ["host speed", f"calibration loop on the server's core, best of 3: {_span(loops, 's', 3)}, {count}"],
        [
            "fdatasync on the data disk",
            f"{syncs[0]['pages']} pages of 4 KiB overwritten, {syncs[0]['samples']} times a probe: "
            f"p50 {_span([s['p50'] for s in syncs], 'ms', 2)}, p99 {_span([s['p99'] for s in syncs], 'ms', 2)}, "
            f"max {_span([s['max'] for s in syncs], 'ms', 1)}, {count}",
        ],
    ]


def environment_table(result: dict[str, Any]) -> str:
    env = result["environment"]
    payload = result.get("payload", {})
    pinning = env.get("pinning")
    rows = [
        [
            "run",
            ("quick (smoke check, short durations)" if result.get("quick") else "full")
            + f", {result.get('elapsed_s', 0):.0f} s",
        ],
        ["measured at", result.get("measured_at", "")],
        ["git commit", env["git_commit"] + (" (uncommitted changes in the tree)" if env.get("git_dirty") else "")],
        ["CPU", f"{env['cpu_model']}, {env['cpus']} cores"],
        [
            "pinning",
            f"server on core {pinning['server_core']}, client on core {pinning['client_core']}" if pinning else "none",
        ],
        [
            "Python / uvicorn / FastAPI / Starlette",
            f"{env['python']} / {env['uvicorn']} / {env['fastapi']} / {env['starlette']}",
        ],
        ["uvicorn event loop / HTTP parser", f"{env['uvicorn_loop']} / {env['uvicorn_http']}"],
        ["wrk", env["wrk"]],
        ["service log level", env["log_level"]],
        ["hot-path modules", env.get("native_modules", "not recorded")],
        [
            "payload",
            f"{payload.get('scenario', '?')}: {payload.get('bytes', 0):,} bytes, "
            f"{payload.get('observations', '?')} Observations, {payload.get('medicines', '?')} medicines, "
            f"{payload.get('conditions', '?')} conditions; {payload.get('cards_returned', '?')} cards returned",
        ],
        [
            "durations",
            f"{result['settings']['warmup_s']:g} s warm-up + {result['settings']['duration_s']:g} s "
            f"measured per closed-loop point; {result['settings']['fixed_rate_s']:g} s at the fixed rate",
        ],
        *host_rows(result.get("host_probes")),
    ]
    return _table(["", ""], [[f"**{name}**", value] for name, value in rows])


def latency_table(result: dict[str, Any]) -> str:
    rows = []
    for run in result.get("closed_loop", []):
        label = [run["target"], str(run["workers"]), run.get("audit") or "-", str(run.get("connections", "-"))]
        if "error" in run:
            rows.append([*label, "not measured", "", "", "", "", run["error"][:80], ""])
            continue
        lat = run["latency_ms"]
        failures = str(run["failures"]) if run["ok"] else f"**{run['failures']}** ({_failure_kinds(run)})"
        rows.append(
            [
                *label,
                f"{run['throughput_rps']:.0f}",
                _ms(lat["p50"]),
                _ms(lat["p95"]),
                _ms(lat["p99"]),
                _ms(lat["max"]),
                failures,
                _stolen(run),
            ]
        )
    note = result.get("postgres_skipped")
    table = _table(
        [
            "server",
            "workers",
            "audit store",
            "connections",
            "calls/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "failures",
            "server core stolen %",
        ],
        rows,
    )
    return table + (f"\n\nPostgreSQL audit store: not measured ({note})." if note else "")


def _stolen(run: dict[str, Any]) -> str:
    """The hypervisor's share of the server's core during the run (bench/host_probe.py), when recorded."""
    stolen = run.get("server_core_steal_percent")
    return "-" if stolen is None else f"{stolen:.1f}"


def _failure_kinds(run: dict[str, Any]) -> str:
    if not run["requests"]:
        return "no call completed"
    return ", ".join(f"{kind} {count}" for kind, count in run["errors"].items() if count)


def floor_table(result: dict[str, Any]) -> str:
    rows = [
        [
            str(row["workers"]),
            str(row["connections"]),
            _ms(row["service_p50_ms"]),
            _ms(row["floor_p50_ms"]),
            "-" if row["ratio"] is None else f"{row['ratio']:.2f}",
            row["verdict"],
            _ms(row.get("floor_audit_p50_ms")),
            f"{row['floor_audit_ratio']:.2f}" if "floor_audit_ratio" in row else "-",
        ]
        for row in result.get("floor_ratio", [])
    ]
    if not rows:
        return "_Not measured._"
    return _table(
        [
            "workers",
            "connections",
            "service p50 ms",
            "floor p50 ms",
            "ratio",
            f"≤ {FLOOR_RATIO_LIMIT:g}",
            "floor + durable write p50 ms",
            "its ratio to the floor",
        ],
        rows,
    )


def fixed_rate_table(result: dict[str, Any]) -> str:
    fixed = result.get("fixed_rate")
    note = _error_note(fixed)
    if note or fixed is None:
        return note or ""
    lat = fixed["latency_ms"]
    verdict = next(row["verdict"] for row in targets(result) if row["target"].startswith("p99"))
    return _table(
        [
            "target calls/s",
            "achieved calls/s",
            "connections",
            "workers",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "failures",
            "server core stolen %",
            f"p99 ≤ {P99_LIMIT_MS:g} ms",
        ],
        [
            [
                f"{fixed['target_rps']:g}",
                f"{fixed['throughput_rps']:.1f}",
                str(fixed["connections"]),
                str(fixed["workers"]),
                _ms(lat["p50"]),
                _ms(lat["p95"]),
                _ms(lat["p99"]),
                _ms(lat["max"]),
                str(fixed["failures"]),
                _stolen(fixed),
                verdict,
            ]
        ],
    )


def fallback_table(result: dict[str, Any]) -> str:
    fallback = result.get("fhir_fallback")
    note = _error_note(fallback)
    if note or fallback is None:
        return note or ""
    if "total_ms" not in fallback:
        return (
            f"_No complete fallback call: statuses {fallback['statuses']}, "
            f"{fallback['data_unavailable_cards']} with a data-unavailable card._"
        )
    limits = fallback["service_limits"]
    verdict = next(row["verdict"] for row in targets(result) if row["target"].startswith("fallback"))
    table = _table(
        [
            "injected latency ms",
            "queries per call",
            "calls",
            "total p50 ms",
            "slowest query p50 ms",
            "query span p50 ms",
            "arrival spread p50 ms",
            "ratio p50",
            "ratio max",
            "failures",
            f"≤ {FALLBACK_RATIO_LIMIT:g}",
        ],
        [
            [
                f"{fallback['injected_latency_ms']:g}",
                f"{fallback['queries_per_call']:g}",
                str(fallback["calls"]),
                _ms(fallback["total_ms"]["p50"]),
                _ms(fallback["slowest_query_ms"]["p50"]),
                _ms(fallback["query_span_ms"]["p50"]),
                _ms(fallback["arrival_spread_ms"]["p50"]) if "arrival_spread_ms" in fallback else "",
                f"{fallback['ratio_total_over_slowest']['p50']:.3f}",
                f"{fallback['ratio_total_over_slowest']['max']:.3f}",
                str(fallback["failures"]),
                verdict,
            ]
        ],
    )
    timeout, deadline = limits["CDS_FHIR_QUERY_TIMEOUT_SECONDS"], limits["CDS_DEADLINE_SECONDS"]
    return table + (
        f"\n\nService bounds in force: `CDS_FHIR_QUERY_TIMEOUT_SECONDS` = {timeout:g} s, "
        f"`CDS_DEADLINE_SECONDS` = {deadline:g} s."
    )


def memory_table(result: dict[str, Any]) -> str:
    memory = result.get("memory")
    note = _error_note(memory)
    if note or memory is None:
        return note or ""
    verdict = next(row["verdict"] for row in targets(result) if row["target"].startswith("RSS"))
    return _table(
        [
            "at start MiB",
            f"after {memory['calls_first']:,} calls MiB",
            f"after {memory['calls_total']:,} calls MiB",
            "growth MiB",
            "growth %",
            "failures",
            f"growth ≤ {MEMORY_NOISE_KIB // 1024} MiB",
        ],
        [
            [
                f"{memory['rss_kib_at_start'] / 1024:.1f}",
                f"{memory['rss_kib_after_first'] / 1024:.1f}",
                f"{memory['rss_kib_after_total'] / 1024:.1f}",
                f"{memory['growth_kib'] / 1024:+.1f}",
                f"{memory['growth_percent']:+.1f}",
                str(memory["failures"]),
                verdict,
            ]
        ],
    )


def targets_table(result: dict[str, Any]) -> str:
    return _table(
        ["target", "measured", "verdict"], [[row["target"], row["measured"], row["verdict"]] for row in targets(result)]
    )


def tables(result: dict[str, Any]) -> dict[str, str]:
    return {
        "environment": environment_table(result),
        "latency": latency_table(result),
        "floor": floor_table(result),
        "fixed-rate": fixed_rate_table(result),
        "fallback": fallback_table(result),
        "memory": memory_table(result),
        "targets": targets_table(result),
    }


def _between_markers(table: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return f"{match.group(1)}\n{table}\n{match.group(2)}"

    return replace


def update_doc(text: str, generated: dict[str, str]) -> str:
    """``text`` with each marked block replaced; raises ValueError naming the markers it lacks."""
    missing = []
    for name, table in generated.items():
        pattern = re.compile(rf"(<!-- bench:{re.escape(name)} -->).*?(<!-- /bench:{re.escape(name)} -->)", re.S)
        if not pattern.search(text):
            missing.append(name)
            continue
        text = pattern.sub(_between_markers(table), text)
    if missing:
        raise ValueError(f"docs markers missing for: {', '.join(missing)}")
    return text
