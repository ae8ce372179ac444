"""Service settings, read from environment variables prefixed ``CDS_``.

Settings are built explicitly (``Settings()``) and handed to ``create_app``; nothing is read at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cds_service.security.jwt_auth import TrustedClient

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
BUNDLED_DIR = PACKAGE_DIR / "_bundled"


def _data_dir(name: str) -> Path:
    """Prefer the checkout's top-level folder; fall back to the copy bundled in the wheel."""
    in_repo = REPO_DIR / name
    return in_repo if in_repo.is_dir() else BUNDLED_DIR / name


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)

    cards_dir: Path = Field(default_factory=lambda: _data_dir("cards"))
    fixtures_dir: Path = Field(default_factory=lambda: _data_dir("fhir_fixtures"))
    site_config: Path | None = None
    """YAML file with site tuning (rules switched off, indicators, thresholds)."""

    data_dir: Path = Path("data")
    """Where the service keeps its files: the SQLite audit database (by default) and the audit spool."""
    audit_db_url: str | None = None
    """SQLAlchemy URL of the audit store; default: SQLite in ``data_dir``. PostgreSQL for several replicas."""

    @property
    def audit_url(self) -> str:
        return self.audit_db_url or f"sqlite:///{self.data_dir / 'cds-audit.sqlite3'}"

    @property
    def audit_spool(self) -> Path:
        return self.data_dir / "audit-spool.jsonl"

    deadline_seconds: float = Field(default=2.0, gt=0, le=30)
    """Bound on a whole hook call, FHIR fallback included."""
    fhir_query_timeout_seconds: float = Field(default=1.5, gt=0, le=30)
    fhir_max_pages: int = Field(default=5, ge=1, le=100)
    fhir_allow_http: bool = False
    """Allow plain-http FHIR servers other than loopback ones (never for production data)."""

    auth_required: bool = True
    """Require a CDS Hooks JWT from a trusted client on every call (discovery, services, feedback)."""
    trusted_clients: list[TrustedClient] = Field(default_factory=list)
    """JSON list of {iss, jwks | jwks_url | jku_allowlist, tenants?, algorithms?} (default ES384, RS384)."""
    public_base_url: str | None = None
    """The service's URL as clients call it (behind a proxy), for the JWT ``aud`` check."""
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwt_max_age_seconds: int = Field(default=300, ge=10, le=3600)

    auditors: dict[str, str] = Field(default_factory=dict)
    """Auditor user names and PBKDF2 password hashes (``python -m cds_service audit hash-password``)."""
    audit_session_secret: SecretStr | None = None
    """Signs auditor sign-in cookies; by default derived from the auditor hashes (same on every worker)."""
    audit_cookie_secure: bool = True
    """Send the auditor cookie over https only (switch off for a plain-http local sandbox)."""

    max_concurrent_calls: int = Field(default=32, ge=1, le=10_000)
    """Hook calls one worker evaluates at once; beyond, 503 with Retry-After at once instead of a queue."""
    max_connections: int = Field(default=1024, ge=8, le=100_000)
    """Open connections one worker accepts (uvicorn ``limit_concurrency``); beyond, uvicorn answers 503."""
    keep_alive_seconds: int = Field(default=5, ge=1, le=3600)
    """Idle time after which a worker closes a keep-alive connection (uvicorn ``timeout_keep_alive``): keep it
    above the idle timeout of a load balancer that holds connections to the service open."""
    audit_wait_seconds: float = Field(default=2.0, gt=0, le=60)
    """Longest a call waits for its audit record to be committed before it answers anyway (the record stays
    queued and is committed when the store catches up)."""
    max_audit_backlog: int = Field(default=2000, ge=10, le=1_000_000)
    """Audit records one worker may hold queued; beyond, calls are refused (503) and /readyz fails."""
    retry_after_seconds: int = Field(default=1, ge=1, le=3600)
    """``Retry-After`` of a 503 answered under overload."""
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    """Largest request body accepted (413 beyond)."""
    max_list_items: int = Field(default=5000, ge=10)
    """Most items in any JSON array of a request (Bundle entries, codings ...)."""
    max_json_depth: int = Field(default=64, ge=8, le=512)
    max_string_length: int = Field(default=1_000_000, ge=1024)

    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins (e.g. the CDS Hooks Sandbox) allowed to call the service."""

    log_level: str = "INFO"

    @field_validator("auditors")
    @classmethod
    def _hashed_passwords_only(cls, value: dict[str, str]) -> dict[str, str]:
        for name, encoded in value.items():
            if not encoded.startswith("pbkdf2_sha256$") or encoded.count("$") != 3:
                raise ValueError(f"auditor {name!r}: give a pbkdf2_sha256 hash, never a plain password")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, value: list[str]) -> list[str]:
        if "*" in value:
            raise ValueError("CORS origins must be listed explicitly; '*' is not allowed")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
