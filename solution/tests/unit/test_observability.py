"""Request ids, the access line and the log formats, on a tiny Flask app (no database)."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator

import pytest
from flask import Flask, abort
from gunicorn.glogging import Logger as GunicornLogger

from movies.config import Settings
from movies.observability import (
    ACCESS_LOGGER,
    configure_logging,
    current_request_id,
    init_app,
    request_id_from,
)

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def app() -> Flask:
    app = Flask("observed")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    init_app(app)

    @app.get("/hello")
    def hello() -> dict:
        logging.getLogger("movies.view").warning("inside the view")
        return {"request_id": current_request_id()}

    @app.get("/gone")
    def gone() -> None:
        abort(410)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    return app


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS_LOGGER]


def test_sane_incoming_request_id_is_echoed_and_logged(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    response = app.test_client().get("/hello?x=1", headers={"X-Request-ID": "abc-123.def_4"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "abc-123.def_4"
    assert response.get_json() == {"request_id": "abc-123.def_4"}
    [record] = access_records(caplog)
    assert record.request_id == "abc-123.def_4"
    assert (record.method, record.path, record.status) == ("GET", "/hello?x=1", 200)
    assert isinstance(record.duration_ms, float) and record.duration_ms >= 0
    assert record.getMessage().startswith("GET /hello?x=1 200 ")
    assert record.getMessage().endswith("ms")


@pytest.mark.parametrize(
    "incoming",
    ["", "has space", "tab\tseparated", 'quo"te', "x" * 129, "ünïcode", "<script>", "a;b"],
)
def test_insane_incoming_request_id_is_replaced(app: Flask, incoming: str) -> None:
    response = app.test_client().get("/hello", headers={"X-Request-ID": incoming})
    assert HEX32.fullmatch(response.headers["X-Request-ID"])
    assert response.get_json()["request_id"] == response.headers["X-Request-ID"]


def test_request_ids_are_fresh_for_each_request(app: Flask) -> None:
    client = app.test_client()
    ids = {client.get("/hello").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5 and all(HEX32.fullmatch(i) for i in ids)


def test_request_id_from_accepts_128_characters_and_no_more() -> None:
    assert request_id_from("a" * 128) == "a" * 128
    assert request_id_from("a" * 129) != "a" * 129
    assert HEX32.fullmatch(request_id_from(None))


@pytest.mark.parametrize(("path", "status"), [("/gone", 410), ("/boom", 500), ("/nowhere", 404)])
def test_error_responses_get_an_id_and_one_access_line(
    app: Flask, caplog: pytest.LogCaptureFixture, path: str, status: int
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    response = app.test_client().get(path)
    assert response.status_code == status
    assert HEX32.fullmatch(response.headers["X-Request-ID"])
    [record] = access_records(caplog)
    assert (record.path, record.status) == (path, status)
    assert record.request_id == response.headers["X-Request-ID"]


def test_requests_turned_away_by_an_earlier_hook_keep_the_callers_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Flask("guarded")

    @app.before_request
    def refuse() -> None:
        abort(503)

    init_app(app)  # registered after the guard, yet runs before it
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    response = app.test_client().get("/anything", headers={"X-Request-ID": "kept-1"})
    assert response.status_code == 503
    assert response.headers["X-Request-ID"] == "kept-1"
    [record] = access_records(caplog)
    assert (record.request_id, record.status) == ("kept-1", 503)


def test_control_characters_in_the_path_cannot_forge_log_lines(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    app.test_client().get("/x%0Afake 200 0.1ms")
    [record] = access_records(caplog)
    assert "\n" not in record.getMessage()
    assert record.path == "/x\\x0afake 200 0.1ms"


def test_text_format_stamps_the_request_id_on_every_line(
    app: Flask, capsys: pytest.CaptureFixture[str], restore_root_logger: None
) -> None:
    configure_logging(Settings(log_level="info", log_format="text"))
    app.test_client().get("/hello", headers={"X-Request-ID": "req-42"})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert "WARNING movies.view [req-42] inside the view" in lines[0]
    assert "INFO movies.access [req-42] GET /hello 200 " in lines[1]


def test_json_format_writes_one_object_per_line(
    app: Flask, capsys: pytest.CaptureFixture[str], restore_root_logger: None
) -> None:
    configure_logging(Settings(log_level="info", log_format="json"))
    app.test_client().get("/hello?title=Am%C3%A9lie", headers={"X-Request-ID": "req-7"})
    logging.getLogger("movies.outside").info("no request here")
    view, access, outside = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert view["message"] == "inside the view" and view["request_id"] == "req-7"
    assert view["level"] == "warning" and "status" not in view
    assert access["logger"] == ACCESS_LOGGER and access["request_id"] == "req-7"
    assert access["method"] == "GET" and access["status"] == 200
    assert access["path"] == "/hello?title=Am%C3%A9lie"
    assert access["duration_ms"] >= 0 and access["time"].endswith("+00:00")
    assert outside["request_id"] == "-"


def test_configure_logging_twice_keeps_one_handler_and_applies_the_level(
    app: Flask, capsys: pytest.CaptureFixture[str], restore_root_logger: None
) -> None:
    configure_logging(Settings(log_level="info", log_format="json"))
    configure_logging(Settings(log_level="warning", log_format="text"))
    app.test_client().get("/hello")
    lines = capsys.readouterr().err.splitlines()
    # warning level: the view's warning is written once, the info access line not at all
    assert len(lines) == 1 and "inside the view" in lines[0]
    assert logging.getLogger().level == logging.WARNING


def test_gunicorn_log_lines_still_format_after_configure_logging(restore_root_logger: None) -> None:
    """gunicorn's own lines ("Booting worker with pid: ...") name the process: %(process)d."""
    configure_logging(Settings(log_level="info", log_format="text"))
    record = logging.getLogger("gunicorn.error").makeRecord(
        "gunicorn.error", logging.INFO, __file__, 1, "Booting worker with pid: %s", (1,), None
    )
    line = logging.Formatter(GunicornLogger.error_fmt).format(record)
    assert f"[{os.getpid()}] [INFO] Booting worker with pid: 1" in line
