"""gunicorn settings (`gunicorn --config python:movies.gunicorn_conf`), from Settings.

Two workers per core by default: a list request spends roughly half its time waiting for
PostgreSQL on the same host, so a second worker per core keeps the core busy, while more workers
only add context switches and database connections (each worker holds up to two pooled
connections per thread).

The workers are gthread, with a few threads each, for the requests that wait on their client
rather than on the CPU: an export streamed to a slow client takes minutes. A sync worker spends
that time in one blocking send, so it cannot tell the master it is alive (it is killed after
`timeout` seconds, the download cut mid-stream) and it serves nobody else (a few slow downloads
take every worker). A gthread worker's main thread keeps beating while a thread sends, and its
other threads go on serving. More threads do not add CPU (the GIL): they only keep a worker
useful while some of its threads wait.
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
worker_class = "gthread"
timeout = _settings.gunicorn_timeout_s
graceful_timeout = _settings.gunicorn_graceful_timeout_s
limit_request_line = _settings.gunicorn_limit_request_line
keepalive = 5
accesslog = None
# gunicorn's control socket defaults to one path per user, shared by every gunicorn on the host
# (two instances would fight over it); nothing here uses it.
control_socket_disable = True
