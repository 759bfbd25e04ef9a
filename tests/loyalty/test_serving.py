"""Production serving: health, request ids and logs, database faults as 503, static files,
the deploy checks and the gunicorn settings."""

from __future__ import annotations

import json
import logging
import os
import re
import runpy
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import path
from whitenoise.compress import Compressor

from loyalty import health
from loyalty.api import error_responses as exceptions
from loyalty.logs import JsonFormatter, RequestIdFilter
from loyalty.models import Club
from tests.api_fixtures import ClubClient

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
HEX_ID = re.compile(r"[0-9a-f]{32}")


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production process (docs/operations.md's list), with ``overrides``."""
    env = {
        # A test tool may allow async-unsafe calls in this process; production never does.
        **{key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "members.example.com",
        "SECURE_SSL_REDIRECT": "true",
        "DATABASE_URL": "sqlite://:memory:",
    }
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# Health ---------------------------------------------------------------------------------------


def test_health_answers_ok_without_a_token_or_a_club() -> None:
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_refuses_other_methods_in_the_error_format() -> None:
    response = Client().post("/healthz")

    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}


def test_health_is_503_when_the_database_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unreachable:
        def cursor(self) -> Any:
            raise OperationalError("connection refused")

    monkeypatch.setattr(health, "connection", Unreachable())

    response = Client().get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"error": exceptions.DATABASE_UNAVAILABLE}
    assert response["Retry-After"] == str(exceptions.RETRY_AFTER_SECONDS)


def test_a_process_whose_database_is_down_answers_503_not_500() -> None:
    """A real unreachable server (nothing listens on port 1): health and the API say 503."""
    script = (
        "import django, json; django.setup(); from django.test import Client; c = Client(); "
        "print(json.dumps([[r.status_code, r.json(), r.get('Retry-After')] for r in "
        "(c.get('/healthz'), c.get('/v3/red-club/members_groups', "
        "HTTP_X_CLIENT_AUTHORIZATION='some-token'))]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "loyalty.settings",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing",
            "LOG_LEVEL": "CRITICAL",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    unavailable = [503, {"error": exceptions.DATABASE_UNAVAILABLE}, "5"]
    assert json.loads(result.stdout.splitlines()[-1]) == [unavailable, unavailable]


def test_health_is_not_in_the_api_schema(client: Client) -> None:
    schema = client.get("/v3/schema/", HTTP_ACCEPT="application/json").json()

    assert not [path for path in schema["paths"] if "health" in path]


# Request ids and the request log --------------------------------------------------------------


def test_a_sane_request_id_is_kept_and_echoed(client: Client) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID="trace-1:abc.DEF_9")

    assert response["X-Request-ID"] == "trace-1:abc.DEF_9"


@pytest.mark.parametrize("sent", [None, "", "a b", "x" * 129, "<script>", "id\u00e9"])
def test_a_missing_or_insane_request_id_is_replaced_by_a_fresh_one(
    client: Client, sent: str | None
) -> None:
    headers = {} if sent is None else {"HTTP_X_REQUEST_ID": sent}
    first = client.get("/healthz", **headers)["X-Request-ID"]
    second = client.get("/healthz", **headers)["X-Request-ID"]

    assert HEX_ID.fullmatch(first)
    assert HEX_ID.fullmatch(second)
    assert first != second


def test_each_request_is_logged_once_as_one_json_line(
    club: Club, api: ClubClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="loyalty.request"):
        response = api.get("members_groups", HTTP_X_REQUEST_ID="req-42")

    [record] = [r for r in caplog.records if r.name == "loyalty.request"]
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert response.status_code == 200
    assert "\n" not in JsonFormatter().format(record)
    assert line["request_id"] == "req-42"
    assert line["method"] == "GET"
    assert line["path"] == f"/v3/{club.slug}/members_groups"
    assert line["status"] == 200
    assert line["club"] == club.slug
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "INFO"


@pytest.fixture
def request_id_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture records as the console handler sees them: tagged with the request id."""
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO):
        yield caplog


def _broken_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


# The URLconf of the test below: one view that fails.
urlpatterns = [path("v3/broken", _broken_view)]
handler500 = "loyalty.api.error_responses.server_error"


def test_an_error_is_logged_with_the_request_id_and_answered_without_a_traceback(
    settings: Any, request_id_logs: pytest.LogCaptureFixture
) -> None:
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)

    response = client.get("/v3/broken", HTTP_X_REQUEST_ID="err-7")

    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    [error] = [r for r in request_id_logs.records if r.name == "django.request"]
    assert error.request_id == "err-7"  # type: ignore[attr-defined]
    assert error.exc_info is not None
    line = json.loads(JsonFormatter().format(error))
    assert line["request_id"] == "err-7"
    assert "RuntimeError: boom" in line["exc_info"]


# Database faults ------------------------------------------------------------------------------


def _fault(cause: Exception) -> OperationalError:
    try:
        raise OperationalError(str(cause)) from cause
    except OperationalError as error:
        return error


@pytest.mark.parametrize(
    ("cause", "message"),
    [
        (psycopg.errors.QueryCanceled(), exceptions.RETRYABLE_SQLSTATES["57014"]),
        (psycopg.errors.LockNotAvailable(), exceptions.RETRYABLE_SQLSTATES["55P03"]),
        (psycopg.errors.DeadlockDetected(), exceptions.DATABASE_BUSY),
        (psycopg.errors.TooManyConnections(), exceptions.DATABASE_UNAVAILABLE),
        (psycopg.errors.AdminShutdown(), exceptions.DATABASE_UNAVAILABLE),
        (psycopg.OperationalError("connection failed"), exceptions.DATABASE_UNAVAILABLE),
    ],
)
def test_retryable_database_faults_are_503_on_both_error_paths(
    cause: Exception, message: str
) -> None:
    error = _fault(cause)

    api = exceptions.api_exception_handler(error, {})
    try:
        raise error
    except OperationalError:
        django = exceptions.server_error(RequestFactory().get("/admin/"))

    assert api is not None
    assert (api.status_code, api.data, api["Retry-After"]) == (503, {"error": message}, "5")
    assert (django.status_code, json.loads(django.content)) == (503, {"error": message})
    assert django["Retry-After"] == "5"


def test_other_database_errors_stay_500_without_a_traceback() -> None:
    error = _fault(psycopg.errors.UndefinedTable())

    assert exceptions.api_exception_handler(error, {}) is None
    try:
        raise error
    except OperationalError:
        response = exceptions.server_error(RequestFactory().get("/v3/red-club/members"))
    assert (response.status_code, json.loads(response.content)) == (
        500,
        {"error": "Internal server error"},
    )


# Static files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's static files, collected without the compressed copies (a minute of
    Brotli at build time, not needed to prove they are served)."""
    root = tmp_path_factory.mktemp("static")
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=root, STORAGES=storages):
        call_command("collectstatic", interactive=False, verbosity=0)
    return root


def test_the_docs_and_the_admin_load_their_static_files_with_debug_off(
    collected: Path, settings: Any
) -> None:
    settings.DEBUG = False
    settings.STATIC_ROOT = collected
    client = Client()  # built now, so WhiteNoise indexes the collected files

    pages = [client.get("/v3/docs/"), client.get("/admin/login/")]
    assets = {
        url
        for page in pages
        for url in re.findall(r'(?:src|href)="(/static/[^"?]+)', page.content.decode())
    }

    assert [page.status_code for page in pages] == [200, 200]
    assert any("swagger-ui" in url for url in assets)
    assert any(url.startswith("/static/admin/") for url in assets)
    for url in assets:
        response = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
        assert response.status_code == 200, url
        assert "max-age" in response["Cache-Control"], url


def test_static_files_are_served_brotli_compressed_to_who_accepts_it(
    collected: Path, settings: Any
) -> None:
    # The copy collectstatic writes with the production storage (brotli installed).
    Compressor(quiet=True).compress(str(collected / "admin" / "js" / "core.js"))
    settings.DEBUG = False
    settings.STATIC_ROOT = collected
    client = Client()

    brotli = client.get("/static/admin/js/core.js", HTTP_ACCEPT_ENCODING="br, gzip")
    plain = client.get("/static/admin/js/core.js")

    assert (brotli.status_code, brotli["Content-Encoding"]) == (200, "br")
    assert "Content-Encoding" not in plain


# Production settings --------------------------------------------------------------------------


def test_the_deploy_checks_pass_with_production_settings() -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_checks_fail_without_a_secret_key_or_the_https_redirect() -> None:
    env = production_env(SECURE_SSL_REDIRECT="false")
    del env["SECRET_KEY"]

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode != 0
    assert "security.W008" in result.stderr
    assert "security.W009" in result.stderr


def test_gunicorn_reads_port_and_concurrency_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")

    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    assert config["bind"] == "0.0.0.0:9123"
    assert config["workers"] == 3
    assert config["accesslog"] is None
    assert config["timeout"] > 30  # above the default statement timeout
    assert config["max_requests"] > 0


def test_the_procfile_runs_web_worker_scheduler_and_release() -> None:
    processes = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )

    assert set(processes) == {"release", "web", "worker", "scheduler"}
    assert processes["web"] == "gunicorn loyalty.wsgi"
    assert processes["worker"] == "python manage.py db_worker"
    assert processes["scheduler"] == "python manage.py run_scheduler"
    assert "migrate --noinput" in processes["release"]
    assert "check --deploy --fail-level WARNING" in processes["release"]
