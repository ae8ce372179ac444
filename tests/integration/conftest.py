"""A real FHIR R4 server and a real service for the integration tests.

- ``sekmet``: sekmet-fhir (PyPI), installed in its own virtualenv ``.venv-fhir`` at the repository root (created
  here when missing: it pins its own FastAPI and pydantic), started on a free port with a temporary data folder,
  the simulator off and Bearer authentication on, so every FHIR request the tools and the service make must
  carry the token; stopped with SIGTERM at the end.
- ``service``: the CDS service under uvicorn in a thread on a free port, with caller authentication on and one
  trusted client whose ES384 key is made here, so the simulator's JWT path is exercised on every call. Its
  clock is the manifests' reference time, as in the other scenario tests (fixture dates are not shifted).

- ``medplum``: Medplum's FHIR router (npm, ``tests/integration/medplum``: ``npm ci`` from its lock file when
  missing) over its in-memory repository, behind a small Node HTTP adapter that requires the same Bearer token;
  ``POST /_reset`` empties it.

If sekmet-fhir or Medplum cannot be installed or started on this machine the tests that need it are skipped with
what happened; nothing else skips them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from cds_service.app import create_app
from cds_service.security.jwt_auth import TrustedClient
from cds_service.settings import Settings
from tests.support import REFERENCE_TIME, REPO, free_port, uvicorn_in_thread

SEKMET_VERSION = "0.1.1"
SEKMET_REQUIREMENT = f"sekmet-fhir=={SEKMET_VERSION}"
FHIR_VENV = REPO / ".venv-fhir"
FHIR_TOKEN = "integration-fhir-token"
ISS = "https://ehr-simulator.integration.test"
KID = "simulator-es384"


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _installed_version(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('sekmet-fhir'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_sekmet() -> Path:
    """``.venv-fhir/bin/sekmet``, installing sekmet-fhir first if needed; skips the caller if that fails."""
    python, sekmet = FHIR_VENV / "bin" / "python", FHIR_VENV / "bin" / "sekmet"
    if sekmet.exists() and _installed_version(python) == SEKMET_VERSION:
        return sekmet
    if not python.exists():
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(FHIR_VENV)], capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            pytest.skip(f"cannot create {FHIR_VENV} for sekmet-fhir: {_tail(made.stderr)}")
    try:
        installed = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", SEKMET_REQUIREMENT],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"pip install {SEKMET_REQUIREMENT} into {FHIR_VENV} took more than 10 minutes")
    if installed.returncode != 0 or not sekmet.exists():
        errors = "\n".join(line for line in installed.stderr.splitlines() if "WARNING: Location" not in line)
        pytest.skip(f"pip install {SEKMET_REQUIREMENT} into {FHIR_VENV} failed: {_tail(errors)}")
    return sekmet


@dataclass(frozen=True)
class FhirServer:
    base: str
    token: str
    log: Path

    def get(self, query: str) -> Any:
        response = requests.get(
            f"{self.base}/{query}",
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/fhir+json"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()


@contextmanager
def running_sekmet(folder: Path) -> Iterator[FhirServer]:
    """sekmet-fhir on a free port with its data in ``folder``; skips the caller if it cannot run here."""
    executable = ensure_sekmet()
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    config = folder / "fhir-settings.yaml"
    settings = {
        "host": "127.0.0.1",
        "port": port,
        "base_url": base,
        "data_dir": str(folder / "data"),
        "simulator": {"enabled": False},  # on by default: it would change MedicationRequests on its own
        "server_auth": {"types": ["bearer"], "tokens": [FHIR_TOKEN]},
        "log_inbound": False,
    }
    config.write_text(yaml.safe_dump(settings))
    log = folder / "sekmet.log"
    # cwd: its keys/ and traffic files stay out of the repository
    command = [str(executable), "serve"]
    with serving(command, folder, {**os.environ, "SEKMET_CONFIG": str(config)}, f"{base}/metadata", log, "sekmet"):
        yield FhirServer(base, FHIR_TOKEN, log)


@contextmanager
def serving(
    command: list[str], cwd: Path, env: dict[str, str] | None, ready_url: str, log: Path, name: str
) -> Iterator[None]:
    """``command`` running (output in ``log``) once ``ready_url`` answers 200; skips the caller if it exits or
    does not answer within 60 s; stopped with SIGTERM (then SIGKILL) at the end."""
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(ready_url, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None:
                pytest.skip(f"{name} exited with {process.returncode}: {_tail(log.read_text())}")
            if time.monotonic() > deadline:
                pytest.skip(f"{name} did not answer {ready_url} within 60 s: {_tail(log.read_text())}")
            time.sleep(0.1)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def sekmet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    with running_sekmet(tmp_path_factory.mktemp("sekmet")) as server:
        yield server


@dataclass(frozen=True)
class ClientKey:
    path: Path
    public: dict[str, Any]
    iss: str = ISS
    kid: str = KID


def make_key(folder: Path, kid: str = KID, name: str = "simulator-key.json") -> ClientKey:
    key = ec.generate_private_key(ec.SECP384R1())
    private = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key)), "kid": kid, "alg": "ES384", "use": "sig"}
    path = folder / name
    path.write_text(json.dumps(private))
    return ClientKey(path, {k: v for k, v in private.items() if k != "d"}, ISS, kid)


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> ClientKey:
    return make_key(tmp_path_factory.mktemp("keys"))


def reference_clock() -> datetime:
    return REFERENCE_TIME


@contextmanager
def running_service(data_dir: Path, key: ClientKey, clock: Callable[[], datetime]) -> Iterator[str]:
    """The service under uvicorn in a thread on a free port; authentication on, ``key`` its one trusted client."""
    settings = Settings(
        data_dir=data_dir,
        cards_dir=REPO / "cards",
        fixtures_dir=REPO / "fhir_fixtures",
        auth_required=True,
        trusted_clients=[TrustedClient(iss=key.iss, jwks={"keys": [key.public]}, algorithms=["ES384"])],
        # The scenarios run concurrently against one single-process FHIR server: the bounds are wider than
        # the defaults so a queue at the FHIR server is not read as missing data. These tests check what the
        # service reads and decides, not its latency (bench/ does that).
        deadline_seconds=20.0,
        fhir_query_timeout_seconds=15.0,
    )
    with uvicorn_in_thread(create_app(settings, clock=clock), start_timeout=20) as url:
        yield url


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, client_key: ClientKey) -> Iterator[str]:
    """The service as of the manifests' reference time (the fixtures are loaded unshifted)."""
    with running_service(tmp_path_factory.mktemp("service"), client_key, reference_clock) as url:
        yield url


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m cds_service ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "cds_service", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "CDS_FIXTURES_DIR": str(REPO / "fhir_fixtures")},
    )


@pytest.fixture(scope="session")
def loaded(sekmet: FhirServer) -> subprocess.CompletedProcess[str]:
    """Every scenario uploaded with ``fixtures load`` (once per session)."""
    return cli("fixtures", "load", "--fhir-base", sekmet.base, "--token", sekmet.token)


MEDPLUM_DIR = REPO / "tests" / "integration" / "medplum"
MEDPLUM_VERSION = "5.2.13"


def ensure_medplum() -> str:
    """``node``, with Medplum's router installed from the lock file (``npm ci``) when missing; skips the caller
    if Node.js or the npm registry is not at hand."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are needed for the Medplum FHIR router")
    installed = MEDPLUM_DIR / "node_modules" / "@medplum" / "fhir-router" / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == MEDPLUM_VERSION:
        return node
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=MEDPLUM_DIR,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("npm ci for the Medplum FHIR router took more than 10 minutes")
    if done.returncode != 0 or not installed.exists():
        pytest.skip(f"npm ci for the Medplum FHIR router failed: {_tail(done.stderr)}")
    return node


@contextmanager
def running_medplum(folder: Path) -> Iterator[FhirServer]:
    """Medplum's FHIR router (in memory, Bearer token required) on a free port, through ``medplum/server.mjs``."""
    node = ensure_medplum()
    port = free_port()
    log = folder / "medplum.log"
    command = [node, "server.mjs", "--port", str(port), "--token", FHIR_TOKEN]
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout
    if version.startswith(("v18.", "v20.", "v21.")):
        command.insert(1, "--experimental-websocket")  # @medplum/core needs the global WebSocket of Node 22+
    with serving(command, MEDPLUM_DIR, None, f"http://127.0.0.1:{port}/healthz", log, "the Medplum server"):
        yield FhirServer(f"http://127.0.0.1:{port}/fhir", FHIR_TOKEN, log)


@pytest.fixture(scope="session")
def medplum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    with running_medplum(tmp_path_factory.mktemp("medplum")) as server:
        yield server
