"""The `movies` command: a thin layer over the library.

Every command reads Settings once, resolves the database (embedded unless DATABASE_URL is set),
and turns library errors into one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from movies.config import ConfigError, Settings


def _settings() -> Settings:
    from movies.observability import configure_logging

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings)
    return settings


def _database_url(settings: Settings) -> str:
    from movies.db import database_url
    from movies.embedded import EmbeddedDatabaseError

    try:
        return database_url(settings)
    except EmbeddedDatabaseError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """IMDb movies: load the public dataset into PostgreSQL and serve it as a REST API.

    Without DATABASE_URL every command uses the embedded PostgreSQL in .data/pgdata, except
    `demo`, which keeps its own in .data/demo/pgdata.
    """


@main.command()
@click.option(
    "--source",
    metavar="URL_OR_DIR",
    help="Base URL or folder holding title.basics.tsv.gz and title.ratings.tsv.gz "
    "[default: MOVIES_SOURCE or https://datasets.imdbws.com/].",
)
@click.option("--force", is_flag=True, help="Swap in the new data even if it shrank drastically.")
def load(source: str | None, force: bool) -> None:
    """Load (or refresh) IMDb's movies in one transaction; the API keeps serving meanwhile.

    Example: movies load --source ./imdb-files
    """
    settings = _settings()
    _load(settings, _database_url(settings), source or settings.source, force=force)


def _load(settings: Settings, url: str, source: str, *, force: bool) -> None:
    from movies.loader import LoadError, run_load

    try:
        report = run_load(
            url, source, downloads=settings.downloads, force=force, progress=sys.stderr.isatty()
        )
    except LoadError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(report.render())


@main.command("init-db")
def init_db() -> None:
    """Create the schema or apply the migrations it lacks (the API and the loader do it too).

    Example: movies init-db   (or: DATABASE_URL=postgresql://localhost/movies movies init-db)
    """
    from movies import schema
    from movies.db import create_engine

    settings = _settings()
    engine = create_engine(_database_url(settings))
    schema.apply(engine)
    engine.dispose()
    click.echo("schema is up to date")


@main.command("stop-db")
def stop_db() -> None:
    """Stop the embedded PostgreSQL servers (they keep running after `movies demo` or `load` exit).

    Stops both the loaded data's server and the demo's own.

    Example: movies stop-db
    """
    from movies.embedded import EmbeddedDatabaseError, stop_embedded

    settings = _settings()
    for pgdata in (settings.pgdata, settings.demo_pgdata):
        try:
            stopped = stop_embedded(pgdata)
        except EmbeddedDatabaseError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(
            f"stopped the embedded PostgreSQL in {pgdata}"
            if stopped
            else f"no embedded PostgreSQL running in {pgdata}"
        )


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="1.0 is full size: about 11.5 M title rows and 700 k movies.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same files.")
def generate(out_dir: Path, scale: float, seed: int) -> None:
    """Write synthetic IMDb-format files (with IMDb's quirks) for tests and benchmarks.

    Example: movies generate .data/synthetic --scale 0.1
    """
    from movies.synthetic import generate as write_files

    try:
        write_files(out_dir, scale=scale, seed=seed)
    except OSError as exc:
        raise click.ClickException(f"cannot write to {out_dir}: {exc}") from exc
    click.echo(f"wrote {out_dir}/title.basics.tsv.gz and title.ratings.tsv.gz")


@main.command("explain")
@click.argument("url")
def explain_command(url: str) -> None:
    """Print the SQL a GET /movies request runs, as sent, and its plan with timing.

    URL is the request (a full URL or the path with its query string). Each statement is shown as
    the API prepares it (filters written in, $n for the values that change from page to page,
    listed below it), then EXPLAIN (ANALYZE, BUFFERS) of it: it runs once.

    Example: movies explain '/movies?genre=Film-Noir&sort=-rating&limit=20'
    """
    from movies.db import create_engine
    from movies.explain import ExplainError, explain_url

    settings = _settings()
    engine = create_engine(
        _database_url(settings), statement_timeout_ms=settings.statement_timeout_ms
    )
    try:
        with engine.connect() as conn:
            explained = explain_url(conn, url, settings.secret_key)
    except ExplainError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    for statement in explained:
        click.echo("\n".join(statement.lines()))


def _gunicorn() -> str:
    """gunicorn beside this Python (the venv's, even when the venv is not activated)."""
    beside = Path(sys.executable).with_name("gunicorn")
    if beside.exists():
        return str(beside)
    found = shutil.which("gunicorn")
    if found is None:
        raise click.ClickException("gunicorn is not installed beside this Python nor on PATH")
    return found


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="gunicorn workers [default: GUNICORN_WORKERS or 2 x cores].",
)
def serve(host: str, port: int, workers: int | None) -> None:
    """Serve the API with gunicorn (replaces this process).

    Example: movies serve --port 8000
    """
    settings = _settings()
    _serve(_database_url(settings), host, port, workers)


def _serve(url: str, host: str, port: int, workers: int | None) -> None:
    """Replace this process with gunicorn serving the database at `url`."""
    env = dict(os.environ, DATABASE_URL=url)
    argv = [
        _gunicorn(),
        "--bind",
        f"{host}:{port}",
        "--config",
        "python:movies.gunicorn_conf",
    ]
    if workers:
        argv += ["--workers", str(workers)]
    argv.append("movies.app:create_app()")
    os.execvpe(argv[0], argv, env)


@main.command()
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
def demo(port: int) -> None:
    """Load the bundled demo data into the demo's own embedded database, then serve it.

    Without DATABASE_URL the demo keeps its own database in .data/demo/pgdata, apart from the
    one `movies load` fills. It never replaces a real dataset: a database whose latest load came
    from other files is refused.

    Example: movies demo --port 8000
    """
    from movies.demo import DEMO_DATA, DemoRefusedError, check_demo_may_load
    from movies.embedded import EmbeddedDatabaseError, start_embedded

    settings = _settings()
    try:
        url = settings.database_url or start_embedded(settings.demo_pgdata)
        check_demo_may_load(url)
    except (EmbeddedDatabaseError, DemoRefusedError) as exc:
        raise click.ClickException(str(exc)) from exc
    # --force: the demo may replace only its own earlier load (checked above), whatever its size.
    _load(settings, url, str(DEMO_DATA), force=True)
    click.echo(f"serving on http://127.0.0.1:{port}  (Swagger UI: http://127.0.0.1:{port}/docs)")
    _serve(url, "127.0.0.1", port, None)
