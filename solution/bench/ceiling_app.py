"""The framework's ceiling: a minimal Flask app answering one fixed JSON body.

Served by the same gunicorn command and settings as the API, it measures what Flask + gunicorn
can do on this machine with no database and no query work, for a response of the same size:

    gunicorn --config python:movies.gunicorn_conf --pythonpath solution/bench \\
        "ceiling_app:create_app('/path/to/body.json')"
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response


def create_app(body_path: str) -> Flask:
    """An app whose GET /movies returns the bytes of `body_path` as application/json.

    :raise OSError: if `body_path` cannot be read.
    """
    body = Path(body_path).read_bytes()
    app = Flask(__name__)

    @app.get("/movies")
    def list_movies() -> Response:
        return Response(body, mimetype="application/json")

    @app.get("/readyz")
    def readyz() -> Response:
        return Response(b'{"status":"ready"}', mimetype="application/json")

    return app
