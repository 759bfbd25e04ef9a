"""The one settings module: every value comes from the environment (12-factor)."""

from email.utils import parseaddr
from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="insecure-development-key-change-me-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS. TLS usually ends at the load balancer, which says so in X-Forwarded-Proto; trust
# that header only behind a proxy that sets it (an empty SECURE_PROXY_SSL_HEADER: never).
# The redirect is off unless asked for, so that the test client and `make run` speak plain
# HTTP; `check --deploy` (the release step) fails while it is off with DEBUG off.
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="HTTP_X_FORWARDED_PROTO")
SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header, "https") if _proxy_ssl_header else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Load balancers and Prometheus probe over plain HTTP, from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "loyalty",
    "members",
    "audiences",
    "groups",
    "groups.webhooks",
]

MIDDLEWARE = [
    # First, so that every response, static files and refusals included, is logged and
    # counted.
    "loyalty.middleware.RequestLogMiddleware",
    "loyalty.metrics.MetricsMiddleware",
    # Before anything reads the Host header or the query string.
    "loyalty.middleware.ApiErrorsInDebugMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "loyalty.middleware.DatabaseTimeoutsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Lets an API GET read from the read replica, when one is configured.
    "loyalty.db_routing.ReplicaReadsMiddleware",
]

ROOT_URLCONF = "loyalty.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "loyalty.wsgi.application"

# An empty DATABASE_URL (`DATABASE_URL= make run`) counts as unset.
DATABASES = {
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    ),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Each web worker keeps its connection from request to request (a new one costs a few
# milliseconds of the server's and the worker's CPU); one found broken at the start of a
# request (the server restarted) is replaced before use.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Statement and lock timeouts of web requests on PostgreSQL (0: none), set once on each
# connection a web request opens (loyalty.middleware.DatabaseTimeoutsMiddleware): commands
# and the task worker never run it, so long recomputes and imports are not cut. Over either:
# 503 with Retry-After.
DB_STATEMENT_TIMEOUT_MS = env.int("DB_STATEMENT_TIMEOUT_MS", default=30_000)
DB_LOCK_TIMEOUT_MS = env.int("DB_LOCK_TIMEOUT_MS", default=5_000)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable server fails fast (503) instead of hanging a worker.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault(
        "connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the dev server, the worker, the scheduler and a command
    # share the file; transactions take the write lock when they begin (IMMEDIATE), so that a
    # writer waits for another instead of failing at once with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
    }

# An optional read replica (a streaming copy of the primary): the reads of API lists and
# shows go there, writes and every other read to the primary; a replica that does not
# answer, or has not replayed a club's last write, is passed by (loyalty.db_routing).
if env.str("DATABASE_REPLICA_URL", default=""):
    # With the primary's CONN_HEALTH_CHECKS: a kept connection to a replica that restarted
    # is found broken before it is used.
    DATABASES["replica"] = {**DATABASES["default"], **env.db("DATABASE_REPLICA_URL")}
    DATABASE_ROUTERS = ["loyalty.db_routing.ReplicaRouter"]

# Behind a pooler in transaction mode (PgBouncer's pool_mode = transaction) each transaction
# may run on another server session, so nothing may rest on session state: no server-side
# cursors (QuerySet.iterator()), no prepared statements (psycopg prepares a query run five
# times), and no SET of the web timeouts (DatabaseTimeoutsMiddleware: they would stay on the
# server session for its next client; the pooler sets them instead). Transaction-scoped
# advisory locks and SET LOCAL work as they are. Set it where the connection goes through
# such a pooler: the web processes.
DB_TRANSACTION_POOLING = env.bool("DB_TRANSACTION_POOLING", default=False)
if DB_TRANSACTION_POOLING:
    for database in DATABASES.values():
        if database["ENGINE"] == "django.db.backends.postgresql":
            database["DISABLE_SERVER_SIDE_CURSORS"] = True
            database.setdefault("OPTIONS", {})["prepare_threshold"] = None

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Filled by `collectstatic` and served by WhiteNoise (with compressed copies); without
# a manifest, so that pages render even where collectstatic has not run (tests).
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# One line per record on stderr, JSON by default (LOG_FORMAT=text for people), each with
# the id of the request it belongs to; loyalty.middleware logs one line per request. Errors
# are also mailed to ADMINS (below) with the traceback but not the request's data
# (loyalty.reporting), in place of Django's own handlers, whose email carries it.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "loyalty.logs.RequestIdFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {
        "json": {"()": "loyalty.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": env.str("LOG_FORMAT", default="json"),
        },
        "mail_admins": {
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "class": "django.utils.log.AdminEmailHandler",
            "reporter_class": "loyalty.reporting.TracebackOnlyReporter",
        },
    },
    "loggers": {
        "django": {"handlers": ["mail_admins"], "level": "INFO"},
        # The scheduler logs each job's run itself (loyalty.scheduler); APScheduler's own
        # lines repeat them. Its errors (a job that raised) still show.
        "apscheduler": {"level": "WARNING"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# Error reports. Unhandled errors (of requests, tasks and scheduled jobs) and error logs go
# to Sentry when SENTRY_DSN is set, tagged with the request id and the club, without member
# data (loyalty.reporting); and by email to ADMINS ("Name <email>" or "email", comma
# separated) through EMAIL_URL (smtp://user:password@host:587, smtp+tls://...).
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    from loyalty.reporting import init_sentry

    init_sentry(
        SENTRY_DSN,
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        release=env.str("SENTRY_RELEASE", default="") or None,
    )
ADMINS = [parseaddr(address) for address in env.list("ADMINS", default=[])]
SERVER_EMAIL = env.str("SERVER_EMAIL", default="members-groups@localhost")
vars().update(env.email_url("EMAIL_URL", default="smtp://localhost:25"))

# Prometheus metrics at /metrics (loyalty.metrics), for a scraper that sends
# "Authorization: Bearer METRICS_TOKEN" or connects from METRICS_ALLOWED_IPS (addresses or
# networks, comma separated; the connection's own address, never X-Forwarded-For). With
# neither set, every caller is refused.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])

# The product's own settings.
# Most identifiers one bulk add/remove call may carry (SPEC section 2).
BULK_IDENTIFIERS_MAX = env.int("BULK_IDENTIFIERS_MAX", default=100_000)
# Largest request body Django will read: a full bulk call of long emails fits with room.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=16 * 1024 * 1024)
# Requests per minute allowed for one API token.
API_RATE_LIMIT = env.str("API_RATE_LIMIT", default="600/min")
# Most members one request of the import API may carry (SPEC section 6: bigger loads go
# through the import_members command, which streams).
MEMBER_IMPORT_MAX_MEMBERS = env.int("MEMBER_IMPORT_MAX_MEMBERS", default=10_000)
# How many days of membership events the scheduler (or `prune_membership_events`) keeps
# (0: forever).
MEMBERSHIP_EVENTS_RETENTION_DAYS = env.int("MEMBERSHIP_EVENTS_RETENTION_DAYS", default=0)
# Webhooks: how long a receiver may take to answer, and for how long failed deliveries
# are retried (with exponential back-off) before they are marked failed.
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=10.0)
WEBHOOKS_RETRY_HOURS = env.float("WEBHOOKS_RETRY_HOURS", default=24.0)
# Days delivered and failed webhook deliveries stay listed before the scheduler (or
# `send_webhooks`) prunes them (0: forever).
WEBHOOKS_DELIVERIES_RETENTION_DAYS = env.int("WEBHOOKS_DELIVERIES_RETENTION_DAYS", default=30)
# Webhook URLs on private, loopback or this machine's addresses are refused unless this is
# set (for receivers on a private network, and for the tests' local receiver).
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", default=False)
# Recomputations over clubs with more members than this run as background tasks.
RECOMPUTE_INLINE_MAX = env.int("RECOMPUTE_INLINE_MAX", default=50_000)
# Seconds a queued or running API member import may go without committing a batch before
# its run counts as dead; sending the same import again then resumes it.
MEMBER_IMPORT_STALE_SECONDS = env.int("MEMBER_IMPORT_STALE_SECONDS", default=300)
# Days the database task backend keeps the results of finished tasks before the scheduler
# prunes them (0: forever).
TASK_RESULTS_RETENTION_DAYS = env.int("TASK_RESULTS_RETENTION_DAYS", default=14)
# A background recomputation still pending this long after it was enqueued is taken to be
# lost, and the scheduler's resume-stalled-work job enqueues it again (a second run of a
# live one changes nothing).
RECOMPUTE_STALE_SECONDS = env.int("RECOMPUTE_STALE_SECONDS", default=900)

# Django's task framework (the django-tasks backport): the database backend by default,
# its worker started with `python manage.py db_worker`.
TASK_BACKEND = env.str("TASK_BACKEND", default="django_tasks_db.DatabaseBackend")
TASKS: dict[str, dict[str, Any]] = {"default": {"BACKEND": TASK_BACKEND}}
# TASK_BACKEND=django_tasks_rq.RQBackend puts the tasks on Redis (REDIS_URL), run by any
# number of `python manage.py rqworker --job-class django_tasks_rq.Job default` processes
# on any number of machines.
# Its packages are the optional extra `rq` (pip install ".[rq]"); their apps (the
# rqworker command) are installed only with this backend.
RQ_QUEUES = {"default": {"URL": env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")}}
if TASK_BACKEND == "django_tasks_rq.RQBackend":
    TASKS["default"]["QUEUES"] = ["default"]
    INSTALLED_APPS += ["django_rq", "django_tasks_rq"]

# The API (SPEC section 2). Rate counters live in this cache, which every web process must
# share: by default the database (`migrate` makes its table), which loyalty.cache counts
# in with one statement per request; Redis (CACHE_URL=redis://host:6379/1) takes the load
# off the database. A locmem cache counts per process.
CACHES = {"default": env.cache("CACHE_URL", default="dbcache://django_cache")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache":
    CACHES["default"]["BACKEND"] = "loyalty.cache.DatabaseCache"
    # Culling past MAX_ENTRIES would drop live counters: keep room for every active token.
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 100_000)
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # Counts a request in one round trip (loyalty.cache).
    CACHES["default"]["BACKEND"] = "loyalty.cache.RedisCache"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "loyalty.api.authentication.ClubTokenAuthentication",
        "loyalty.api.authentication.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["loyalty.api.permissions.HasClubPermit"],
    "DEFAULT_THROTTLE_CLASSES": ["loyalty.api.throttling.TokenRateThrottle"],
    # JSON only; the API viewsets add the size and JSON-object checks (loyalty.api.views).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # JSON only, whatever Accept or ?format= say (loyalty.api.renderers).
    "DEFAULT_RENDERER_CLASSES": ["loyalty.api.renderers.ApiJSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "loyalty.api.renderers.JSONOnly",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "loyalty.api.error_responses.api_exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Members Groups service API",
    "DESCRIPTION": (
        "Members, members groups and audiences of a loyalty club, under "
        "/v3/{loyalty_club_slug}/. Send X-Client-Authorization (the club's token), "
        'X-User-Agent and X-Product-Name. Errors are {"error": "..."}; a 422 adds '
        "details shaped like the payload. Generated clients: give the client the three "
        "headers once (openapi-python-client: AuthenticatedClient(token=..., "
        'auth_header_name="X-Client-Authorization", prefix="", headers={"X-User-Agent": '
        '..., "X-Product-Name": ...})); 470 and 471 are the platform\'s own status codes '
        "for a missing and a malformed X-User-Agent or X-Product-Name."
    ),
    "VERSION": "3",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ChannelStatusEnum": "members.models.ChannelStatus",
        "ImportStatusEnum": "members.models.ImportStatus",
        "ImportOperationEnum": "members.models.ImportOperation",
        # The bulk payload's identifier_type takes the same three.
        "MemberIdentifierTypeEnum": "members.models.MemberIdentifierType",
    },
    # After drf-spectacular's enum names: the components declared in code, one per enum.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "loyalty.api.components.postprocess_schema",
    ],
}
