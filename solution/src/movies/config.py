"""Settings: the only module that reads the environment.

Everything else receives a `Settings` instance, built once at the edge (app factory, CLI).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SOURCE = "https://datasets.imdbws.com/"
DEFAULT_SECRET_KEY = "movies-development-key-set-MOVIES_SECRET_KEY"


DEFAULT_RATE_LIMIT_READS = "6000/minute"
DEFAULT_RATE_LIMIT_WRITES = "30/minute"
# An origin as browsers send it: scheme, host, optional port; no path, no trailing slash.
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class ConfigError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _choice(environ: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = environ.get(name, "").strip() or default
    if value.lower() not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value.lower()


def _rate_limit(environ: Mapping[str, str], name: str, default: str) -> str:
    """A limit such as "30/minute" or "100/second;2000/hour"; "off" gives "" (no limit)."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() == "off":
        return ""
    # Imported here: `limits` takes 0.09 s to import, which every CLI command (a load too) would
    # pay for a setting only the API uses.
    from limits import parse_many

    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must be like 30/minute or 100/second;2000/hour, or off; got {raw!r}"
        ) from None
    return raw


def _origins(environ: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() == "off":
        return ()
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(
                f"{name} must be * or origins like https://example.org, or off; got {origin!r}"
            )
    return origins


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. `database_url` None means: start the embedded PostgreSQL."""

    database_url: str | None = None
    # A streaming replica (or a pooler in front of replicas) that serves the API's reads; None:
    # reads use database_url. Writes, migrations and the loader always use database_url.
    database_read_url: str | None = None
    # Where GET /movies/export reads; None: where the other reads go. Its cursor outlives a
    # transaction (WITH HOLD), which a pooler in transaction mode cannot keep: point this past
    # such a pooler, straight at the replicas.
    database_export_url: str | None = None
    # Server-side prepared statements for the read path. A pooler in transaction mode (pgbouncer
    # before 1.21, or any version for SQL-level PREPARE) hands each statement to any server
    # connection, where the statement was never prepared: switch them off behind one.
    prepared_statements: bool = True
    data_dir: Path = field(default_factory=lambda: Path(".data").resolve())
    source: str = DEFAULT_SOURCE
    api_tokens: tuple[str, ...] = ()
    statement_timeout_ms: int = 5000
    log_level: str = "info"
    log_format: str = "text"
    # Signs pagination cursors (integrity, not secrecy). The default is public: set
    # MOVIES_SECRET_KEY in production so clients cannot forge cursors. Every worker must share it.
    secret_key: str = DEFAULT_SECRET_KEY
    db_connect_timeout_s: int = 3
    # Responses of data GETs may be cached (and reused after revalidation) this many seconds.
    cache_max_age_s: int = 60
    # Each worker keeps finished data responses, by ETag, up to this many MiB (0: no cache).
    response_cache_mb: int = 32
    # GET /movies/export reads every matching row: its statements get this limit, not the
    # per-statement one (0: none).
    export_statement_timeout_ms: int = 120_000
    # gunicorn: sync workers (threads > 1: gthread). A request spends about half its time waiting
    # on PostgreSQL (same host), so two workers per core keep the cores busy (see gunicorn_conf).
    gunicorn_workers: int = field(default_factory=lambda: 2 * (os.cpu_count() or 1))
    gunicorn_threads: int = 1
    gunicorn_timeout_s: int = 30
    gunicorn_graceful_timeout_s: int = 30
    gunicorn_limit_request_line: int = 8190
    # Per client address, as `limits` strings; "" disables a limit. Reads: every GET/HEAD except
    # /healthz and /readyz; writes: POST /movies. Memory storage counts per worker process.
    rate_limit_reads: str = DEFAULT_RATE_LIMIT_READS
    rate_limit_writes: str = DEFAULT_RATE_LIMIT_WRITES
    rate_limit_storage_uri: str = "memory://"
    # Proxies in front of the app that append to X-Forwarded-For; 0 trusts no such header.
    trusted_proxies: int = 0
    # "*": any site may read; a listed origin may also send Authorization (POST). () : no CORS.
    cors_origins: tuple[str, ...] = ("*",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from the environment; raise ConfigError naming the bad variable."""
        env = os.environ if environ is None else environ
        tokens = tuple(t.strip() for t in env.get("MOVIES_API_TOKENS", "").split(",") if t.strip())
        return cls(
            database_url=env.get("DATABASE_URL", "").strip() or None,
            database_read_url=env.get("DATABASE_READ_URL", "").strip() or None,
            database_export_url=env.get("DATABASE_EXPORT_URL", "").strip() or None,
            prepared_statements=_choice(env, "MOVIES_PREPARED_STATEMENTS", "on", ("on", "off"))
            == "on",
            data_dir=Path(env.get("MOVIES_DATA_DIR", "").strip() or ".data").resolve(),
            source=env.get("MOVIES_SOURCE", "").strip() or DEFAULT_SOURCE,
            api_tokens=tokens,
            statement_timeout_ms=_int(env, "MOVIES_STATEMENT_TIMEOUT_MS", 5000, minimum=1),
            log_level=_choice(
                env, "MOVIES_LOG_LEVEL", "info", ("debug", "info", "warning", "error")
            ),
            log_format=_choice(env, "MOVIES_LOG_FORMAT", "text", ("text", "json")),
            secret_key=env.get("MOVIES_SECRET_KEY", "").strip() or DEFAULT_SECRET_KEY,
            db_connect_timeout_s=_int(env, "MOVIES_DB_CONNECT_TIMEOUT_S", 3, minimum=1),
            cache_max_age_s=_int(env, "MOVIES_CACHE_MAX_AGE_S", 60, minimum=0),
            response_cache_mb=_int(env, "MOVIES_RESPONSE_CACHE_MB", 32, minimum=0),
            export_statement_timeout_ms=_int(
                env, "MOVIES_EXPORT_STATEMENT_TIMEOUT_MS", 120_000, minimum=0
            ),
            gunicorn_workers=_int(env, "GUNICORN_WORKERS", 2 * (os.cpu_count() or 1), minimum=1),
            gunicorn_threads=_int(env, "GUNICORN_THREADS", 1, minimum=1),
            gunicorn_timeout_s=_int(env, "GUNICORN_TIMEOUT", 30, minimum=1),
            gunicorn_graceful_timeout_s=_int(env, "GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=1),
            gunicorn_limit_request_line=_int(env, "GUNICORN_LIMIT_REQUEST_LINE", 8190, minimum=0),
            rate_limit_reads=_rate_limit(env, "MOVIES_RATE_LIMIT_READS", DEFAULT_RATE_LIMIT_READS),
            rate_limit_writes=_rate_limit(
                env, "MOVIES_RATE_LIMIT_WRITES", DEFAULT_RATE_LIMIT_WRITES
            ),
            rate_limit_storage_uri=env.get("MOVIES_RATE_LIMIT_STORAGE_URI", "").strip()
            or "memory://",
            trusted_proxies=_int(env, "MOVIES_TRUSTED_PROXIES", 0),
            cors_origins=_origins(env, "MOVIES_CORS_ORIGINS", ("*",)),
        )

    @property
    def pgdata(self) -> Path:
        """Where the embedded PostgreSQL keeps its files."""
        return self.data_dir / "pgdata"

    @property
    def demo_pgdata(self) -> Path:
        """Where the demo's own embedded PostgreSQL keeps its files (never the loaded data's)."""
        return self.data_dir / "demo" / "pgdata"

    @property
    def downloads(self) -> Path:
        """Where downloaded IMDb files are cached between runs."""
        return self.data_dir / "downloads"
