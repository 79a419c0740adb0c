"""The scale topology's proxy policy (solution/scale/nginx-proxy.conf) in front of the real API.

nginx (the distribution's package; `make test` installs it when missing) runs as one foreground
process with the policy file both deployments include, in front of the API served by werkzeug
on a free port. If nginx cannot start, the tests fail, they do not skip.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pg_servers
import pytest
from werkzeug.serving import make_server

from movies.app import create_app
from movies.config import Settings

POLICY = Path(__file__).resolve().parents[2] / "scale" / "nginx-proxy.conf"
TOKEN = "nginx-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api_port(make_database: Callable[[], str]) -> Iterator[int]:
    """The API on a database of its own, behind one proxy, served in a thread."""
    app = create_app(
        Settings(
            database_url=make_database(),
            secret_key="nginx-test-key",
            api_tokens=(TOKEN,),
            trusted_proxies=1,
            rate_limit_reads="",
            rate_limit_writes="3/minute",
        )
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()


@pytest.fixture(scope="module")
def nginx_port(api_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.fail("nginx is not installed: apt-get install nginx (make test does)")
    folder = tmp_path_factory.mktemp("nginx")
    port = pg_servers.free_port()
    conf = folder / "nginx.conf"
    # One process, in the foreground, as the user running the tests: no workers to switch user.
    conf.write_text(
        f"""daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    proxy_cache_path {folder}/cache keys_zone=movies:1m;
    upstream api {{ server 127.0.0.1:{api_port}; keepalive 4; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ include {POLICY}; }}
    }}
}}
"""
    )
    process = subprocess.Popen([binary, "-c", str(conf), "-p", str(folder)])
    deadline = time.monotonic() + 10
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            log = folder / "error.log"
            pytest.fail(f"nginx did not start: {log.read_text() if log.exists() else ''}")
        time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(timeout=10)


def _answers(port: int) -> bool:
    try:
        return get(port, "/healthz")[0] == 200
    except OSError:
        return False


def get(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET", body=None
) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def cache_statuses(port: int, path: str, headers: dict[str, str] | None = None) -> list[str]:
    return [get(port, path, headers)[1]["x-cache-status"] for _ in range(2)]


def test_repeated_get_is_answered_by_the_cache(nginx_port: int) -> None:
    assert cache_statuses(nginx_port, "/genres") == ["MISS", "HIT"]


def test_get_with_authorization_never_uses_the_cache(nginx_port: int) -> None:
    assert cache_statuses(nginx_port, "/dataset", AUTH) == ["BYPASS", "BYPASS"]
    # ... nor fills it: the next plain request still goes to the API.
    assert get(nginx_port, "/dataset")[1]["x-cache-status"] == "MISS"


def test_reads_of_a_client_that_just_wrote_bypass_the_cache(nginx_port: int) -> None:
    get(nginx_port, "/movies?limit=1")
    cookie = {"Cookie": "movies_write_lsn=anything"}
    assert cache_statuses(nginx_port, "/movies?limit=1", cookie) == ["BYPASS", "BYPASS"]


def test_errors_are_not_cached(nginx_port: int) -> None:
    assert cache_statuses(nginx_port, "/movies/tt0000001") == ["MISS", "MISS"]


def test_client_cannot_choose_its_rate_limit_bucket_through_the_proxy(nginx_port: int) -> None:
    statuses = [
        get(
            nginx_port,
            "/movies",
            {**AUTH, "Content-Type": "application/json", "X-Forwarded-For": f"203.0.113.{n}"},
            method="POST",
            body=b"{}",
        )[0]
        for n in range(4)
    ]
    # nginx appends the address it saw; the API (one trusted proxy) counts that one.
    assert statuses == [400, 400, 400, 429]
