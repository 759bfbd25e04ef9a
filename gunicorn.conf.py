"""Gunicorn's settings for production: `gunicorn loyalty.wsgi` reads this file from here.

Send SIGHUP for a graceful reload (new workers start, old ones finish their requests) and
SIGTERM to stop after in-flight requests (at most graceful_timeout seconds).
"""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Sync workers, each one request at a time with one database connection: gunicorn's rule of
# thumb, capped so that a large host does not open more connections than the database takes.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 12)))
# Above DB_STATEMENT_TIMEOUT_MS (default 30 s): a slow query is answered 503 by the
# application before gunicorn would kill the worker mid-request.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Recycle workers now and then (staggered), so slow leaks never add up.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000"))
max_requests_jitter = max_requests // 10
# The application logs each request itself, as JSON with its request id (loyalty.middleware).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Heartbeat files in memory: a disk-backed /tmp can stall workers in containers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
