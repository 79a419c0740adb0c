"""The Flask application factory: `gunicorn 'movies.app:create_app()'`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa
from flask import Flask, request

from movies import observability, schema
from movies.api import caching, routing, security, views
from movies.api.connection import close_connection, db, replica_binds
from movies.api.docs import register_docs
from movies.api.json_provider import OrjsonProvider
from movies.config import Settings
from movies.db import database_url, engine_options, engine_url
from movies.errors import register_error_handlers
from movies.repository import GenreVocabulary

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024

# Extensions that bind to the app: each is `init_app(app, settings)`, called in this order at the
# end of create_app (metrics, rate limits...). Add new ones here.
EXTENSIONS: list[Callable[[Flask, Settings], None]] = [
    security.init_app,
    caching.init_app,
    routing.init_app,
]


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API: bind the database, bring its schema up to date, register the routes.

    Without `settings`, they are read from the environment.
    :raise ConfigError: if an environment variable is invalid.
    """
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)  # compact, keys in order; a page in ~10 us
    app.config.update(
        MOVIES_SETTINGS=settings,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SQLALCHEMY_DATABASE_URI=engine_url(database_url(settings)),
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings),
        SQLALCHEMY_BINDS=replica_binds(settings),
    )
    db.init_app(app)
    # An empty or older database works: schema.apply creates or migrates it, under a lock.
    _apply_schema_now_or_on_first_request(app)
    app.extensions["movies.genres"] = GenreVocabulary()
    app.teardown_appcontext(close_connection)

    register_error_handlers(app)
    app.register_blueprint(views.bp)
    register_docs(app)

    for init_extension in EXTENSIONS:
        init_extension(app, settings)
    # WSGI layers, innermost first: validators, 304s and kept responses of the data GETs; the
    # rate limits and the door headers; the request id and the access line of every response;
    # the client address fix around all.
    app.wsgi_app = caching.CachedResponses(app.wsgi_app, app.extensions["movies.caching"])  # type: ignore[method-assign]
    security.add_door_headers(app, settings)
    observability.init_app(app)
    security.trust_proxies(app, settings)
    return app


def _apply_schema_if_permitted(engine: sa.Engine) -> None:
    """Apply the schema, unless this role may not change it.

    The compose API role (movies_api, sql-scripts/02-privileges.sql) may not: there the database's
    init scripts and the loader own the schema, and the API serves whatever is there.
    """
    try:
        schema.apply(engine)
    except sa.exc.ProgrammingError as exc:
        if getattr(exc.orig, "pgcode", None) != "42501":  # insufficient_privilege
            raise
        log.info("schema left as it is: this database role may not change it")


def _apply_schema_now_or_on_first_request(app: Flask) -> None:
    """Apply the schema at start; if the database is unreachable then, keep coming up.

    /healthz answers meanwhile and every other route is a fast 503 until a request finds the
    database, applies the schema, and serves normally from then on.
    """
    state = {"pending": True}
    lock = threading.Lock()

    def apply() -> None:
        with lock:
            if state["pending"]:
                _apply_schema_if_permitted(db.engine)
                state["pending"] = False

    try:
        with app.app_context():
            apply()
        return
    except sa.exc.OperationalError as exc:
        log.error("database unreachable at start; retrying on requests: %s", exc.orig)

    @app.before_request
    def apply_pending_schema() -> None:
        if state["pending"] and request.endpoint != "movies.healthz":
            apply()
