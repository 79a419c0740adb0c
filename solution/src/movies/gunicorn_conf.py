"""gunicorn settings (`gunicorn --config python:movies.gunicorn_conf`), from Settings.

Two workers per core by default: a list request spends roughly half its time waiting for
PostgreSQL on the same host, so a second worker per core keeps the core busy, while more workers
only add context switches and database connections (each worker holds up to two pooled
connections per thread).

The workers are sync by default: each serves one request at a time, so a request never waits
for the GIL behind another request of its worker, and an idle worker takes the next connection.
Measured side by side on the uncached list shapes, gthread workers with 4 threads kept the
requests/s but doubled the p99 (20-40 ms against 11-19 ms). GUNICORN_THREADS above 1 switches
to gthread. A sync worker tells the master it is alive only between requests, and an export
streamed to a slow client takes minutes: the export beats per chunk sent (`post_fork` hands it
the worker's heartbeat), so it is not killed mid-download while its client keeps reading.
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


def post_fork(server, worker) -> None:
    """Give the export the worker's heartbeat (see the top)."""
    from movies.api import export

    export.set_heartbeat(worker.notify)
