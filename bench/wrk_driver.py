"""wrk as the load generator: the Lua script that POSTs a hook body (optionally paced to a fixed rate), the
command line, and the parsing of the JSON line the script's ``done()`` prints into a result record.

wrk's own text output gives p50/75/90/99 only; ``done()`` prints every percentile needed (p95 included) and the
error counts, from wrk's full latency histogram, on one line that starts with ``MARKER``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

MARKER = "BENCH_JSON "
PERCENTILES = (50, 75, 90, 95, 99, 99.9)
ERROR_KINDS = ("connect", "read", "write", "timeout", "status")

_BODY = """\
local file = assert(io.open([==[{path}]==], "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
"""

# Open-loop pacing inside a closed-loop tool: one schedule of send slots 1/rate apart, shared by the thread's
# connections; a connection that gets a response waits for the next free slot. When the server falls behind,
# the schedule restarts from now instead of bursting to catch up, so the achieved rate shows the shortfall.
_PACING = """\
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} bench_timespec_t;
int clock_gettime(int clk_id, bench_timespec_t *tp);
]]
local clock = ffi.new("bench_timespec_t")
local CLOCK_MONOTONIC = 1
local interval_ms = 1000 / {rate!r}
local next_slot = nil

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

function delay()
  local now = now_ms()
  if next_slot == nil or next_slot < now then
    next_slot = now
  end
  local wait = next_slot - now
  next_slot = next_slot + interval_ms
  return wait
end
"""

_DONE = """\
function done(summary, latency, requests)
  local parts = {{}}
  for _, p in ipairs({{{percentiles}}}) do
    parts[#parts + 1] = string.format('"%s": %d', tostring(p), latency:percentile(p))
  end
  local e = summary.errors
  io.write(string.format(
    '\\n{marker}{{"duration_us": %d, "requests": %d, "bytes": %d, '
      .. '"errors": {{"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}}, '
      .. '"latency_us": {{"min": %d, "max": %d, "mean": %.1f, "stdev": %.1f, "percentiles": {{%s}}}}}}\\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(parts, ", ")))
end
"""


def lua_script(body_path: Path, rate: float | None = None) -> str:
    """The wrk script: POST the JSON body read from ``body_path``; with ``rate``, at most that many calls/s."""
    path = str(body_path)
    if "]==]" in path or "\n" in path:
        raise ValueError(f"body path cannot be quoted for Lua: {path!r}")
    parts = [_BODY.format(path=path)]
    if rate is not None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        parts.append(_PACING.format(rate=float(rate)))
    parts.append(_DONE.format(percentiles=", ".join(str(p) for p in PERCENTILES), marker=MARKER))
    return "\n".join(parts)


def wrk_command(
    url: str,
    script: Path,
    *,
    connections: int,
    duration_s: float,
    timeout_s: float = 5.0,
    core: int | None = None,
) -> list[str]:
    """One wrk thread (the client gets one core); ``core`` pins it with taskset."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    return ["taskset", "-c", str(core), *command] if core is not None else command


def _ms(microseconds: float) -> float:
    return round(microseconds / 1000, 3)


def parse_wrk_output(stdout: str) -> dict[str, Any]:
    """The result record from wrk's stdout: throughput, latency percentiles in ms, and failures (socket errors,
    timeouts and HTTP statuses >= 400, as wrk counts them). Raises ValueError when the ``done()`` line is absent."""
    line = next((raw for raw in stdout.splitlines() if raw.startswith(MARKER)), None)
    if line is None:
        raise ValueError("wrk printed no result line (did the Lua script load?)")
    raw: dict[str, Any] = json.loads(line[len(MARKER) :])
    latency = raw["latency_us"]
    duration_s = raw["duration_us"] / 1e6
    requests = int(raw["requests"])
    errors = {kind: int(raw["errors"][kind]) for kind in ERROR_KINDS}
    failures = sum(errors.values())
    latency_ms: dict[str, float | None] = {f"p{key}": _ms(value) for key, value in latency["percentiles"].items()}
    latency_ms.update({key: _ms(latency[key]) for key in ("min", "max", "mean", "stdev")})
    if requests == 0:  # wrk's empty histogram holds no latency, only sentinels
        latency_ms = dict.fromkeys(latency_ms)
    return {
        "requests": requests,
        "duration_s": round(duration_s, 3),
        "throughput_rps": round(requests / duration_s, 1) if duration_s > 0 else 0.0,
        "latency_ms": latency_ms,
        "errors": errors,
        "failures": failures,
        "ok": failures == 0 and requests > 0,
    }


class WrkFailed(RuntimeError):
    pass


def run_wrk(command: list[str], log: list[str]) -> dict[str, Any]:
    """Run wrk, record its command line in ``log``, and return the parsed record with the command."""
    log.append(shlex.join(command))
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WrkFailed(f"{shlex.join(command)}: {exc}") from exc
    if finished.returncode != 0:
        raise WrkFailed(f"{shlex.join(command)} exited {finished.returncode}: {finished.stderr.strip()[-500:]}")
    try:
        record = parse_wrk_output(finished.stdout)
    except ValueError as exc:
        raise WrkFailed(f"{shlex.join(command)}: {exc}; stderr: {finished.stderr.strip()[-500:]}") from exc
    record["command"] = shlex.join(command)
    return record
