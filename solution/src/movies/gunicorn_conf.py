"""gunicorn settings (`gunicorn --config python:movies.gunicorn_conf`), from Settings.

Sync workers, two per core by default: a list request spends roughly half its time waiting for
PostgreSQL on the same host, so a second worker per core keeps the core busy, while more workers
only add context switches and database connections (each worker holds one pooled connection per
thread). Threads stay at 1: the work is CPU-bound Python under the GIL once the database answers.
The access log is off; request logging is the app's job.
"""

from __future__ import annotations

from movies.config import Settings
from movies.observability import configure_logging

_settings = Settings.from_env()
# The master configures logging before forking: every worker inherits level and format.
configure_logging(_settings)

workers = _settings.gunicorn_workers
threads = _settings.gunicorn_threads
worker_class = "gthread" if threads > 1 else "sync"
timeout = _settings.gunicorn_timeout_s
graceful_timeout = _settings.gunicorn_graceful_timeout_s
limit_request_line = _settings.gunicorn_limit_request_line
keepalive = 5
accesslog = None
# gunicorn's control socket defaults to one path per user, shared by every gunicorn on the host
# (two instances would fight over it); nothing here uses it.
control_socket_disable = True
