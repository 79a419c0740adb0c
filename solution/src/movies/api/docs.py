"""The OpenAPI document (served as YAML and JSON) and Swagger UI at /docs (bundled assets)."""

from __future__ import annotations

from importlib import resources

import yaml
from flask import Blueprint, Flask, Response, current_app
from flask_swagger_ui import get_swaggerui_blueprint

bp = Blueprint("docs", __name__)

DOCS_URL = "/docs"


def load_spec_text() -> str:
    """The text of openapi.yaml shipped in the package."""
    return (resources.files("movies") / "openapi.yaml").read_text(encoding="utf-8")


@bp.get("/openapi.yaml")
def openapi_yaml() -> Response:
    """The contract, as written."""
    return Response(current_app.extensions["movies.spec_yaml"], mimetype="application/yaml")


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The contract, as JSON."""
    return Response(current_app.extensions["movies.spec_json"], mimetype="application/json")


def register_docs(app: Flask) -> None:
    """Serve the spec and Swagger UI (`/docs` and `/docs/` both work)."""
    text = load_spec_text()
    app.extensions["movies.spec_yaml"] = text
    app.extensions["movies.spec_json"] = app.json.dumps(yaml.safe_load(text))
    app.register_blueprint(bp)
    swagger = get_swaggerui_blueprint(
        DOCS_URL, "/openapi.json", config={"app_name": "IMDb movies API"}
    )
    app.register_blueprint(swagger)
    app.add_url_rule(DOCS_URL, "swagger_ui_index", app.view_functions["swagger_ui.show"])
