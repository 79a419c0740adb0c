"""The contract: openapi.yaml is valid OpenAPI 3.1, matches the app's routes, and the app's
responses conform to it (schemathesis, in process, bounded examples)."""

from __future__ import annotations

import re

import pytest
import schemathesis
import yaml
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from movies.api.docs import load_spec_text

UNDOCUMENTED = {"/docs", "/docs/", "/docs/{path}", "/static/{filename}"}


def spec() -> dict:
    return yaml.safe_load(load_spec_text())


def test_spec_is_valid_openapi_3_1() -> None:
    document = spec()
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_route_is_in_the_spec_and_back(app: Flask) -> None:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        if path in UNDOCUMENTED:
            continue
        methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
        routes.setdefault(path, set()).update(methods)
    documented = {path: set(ops) - {"parameters"} for path, ops in spec()["paths"].items()}
    assert routes == documented


def test_served_spec_equals_the_file(client: FlaskClient) -> None:
    assert client.get("/openapi.json").json == spec()
    response = client.get("/openapi.yaml")
    assert response.status_code == 200 and yaml.safe_load(response.data) == spec()


@pytest.mark.parametrize("path", ["/docs", "/docs/"])
def test_swagger_ui_is_served_from_local_assets(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200 and b"swagger-ui" in response.data
    assert b"/openapi.json" in response.data
    assert b"cdn" not in response.data.lower() and b"unpkg" not in response.data
    with client.get("/docs/swagger-ui-bundle.js") as bundle:
        assert bundle.status_code == 200 and bundle.mimetype == "text/javascript"


def _operations(write_app: Flask) -> list[schemathesis.APIOperation]:
    """The spec's operations, bound to the write app (fresh database, tokens configured)."""
    with write_app.app_context():
        from movies.api.connection import db

        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO movie_imdb (id, source, title, rating, genres) "
                "VALUES ('tt0111161', 'imdb', 'NA', 9.3, '{Drama}'), "
                "('tt12345678', 'imdb', '\"', NULL, '{}')"
            )
            conn.exec_driver_sql(
                "INSERT INTO dataset_load (source, rows_read, movies, rated_movies, genre_links, "
                "skipped_rows, seconds) VALUES ('spec', 2, 2, 1, 1, 0, 0.1)"
            )
    api = schemathesis.openapi.from_wsgi("/openapi.json", write_app)
    return [result.ok() for result in api.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_responses_conform_to_the_spec(
    write_client: FlaskClient, write_app: Flask, mode: GenerationMode
) -> None:
    """Generated requests (valid, then invalid) get documented, schema-valid answers; no 500."""
    for operation in _operations(write_app):
        if mode == GenerationMode.NEGATIVE and operation.path != "/movies":
            continue  # no typed parameter or body to break (an id is any string)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=20,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(
                headers={"Authorization": "Bearer token-one"},
                # Cursors (signed), genre names (a vocabulary in the database) and duplicate sort
                # keys are validated beyond what a JSON schema can say: schema-valid is not valid.
                excluded_checks=[positive_data_acceptance],
            )
            assert response.status_code < 500

        check()


def test_stateful_create_then_get_follows_the_spec_links(
    write_client: FlaskClient, write_app: Flask
) -> None:
    """POST /movies, then GET /movies/{movie_id} through the spec's link, in bounded scenarios.

    Only the spec's own links drive the scenarios (schemathesis' inferred links would make
    GET /movies the only entry point and never create a movie).
    """
    _operations(write_app)  # seeds two IMDb movies and a load
    api = schemathesis.openapi.from_wsgi("/openapi.json", write_app)
    api.config.phases.stateful.inference.algorithms = []
    # Configured (not added per call), so the auth checks know which token is the real one.
    api.config.update(headers={"Authorization": "Bearer token-one"})
    calls: list[tuple[str, str, int]] = []

    class CreateThenGet(api.as_state_machine()):  # type: ignore[misc]
        def after_call(self, response, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            calls.append((case.method, case.path, response.status_code))

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            case.validate_response(
                response,
                excluded_checks=[positive_data_acceptance],
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )
            assert response.status_code < 500

    CreateThenGet.run(
        settings=settings(
            max_examples=10,
            stateful_step_count=3,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    created = {(m, p) for m, p, status in calls if status == 201}
    fetched = {(m, p) for m, p, status in calls if status == 200}
    assert ("POST", "/movies") in created and ("GET", "/movies/{movie_id}") in fetched
