"""Gunicorn's settings for production: `gunicorn loyalty.wsgi` reads this file from here.

Send SIGHUP for a graceful reload (new workers start, old ones finish their requests) and
SIGTERM to stop after in-flight requests (at most graceful_timeout seconds).
"""

import multiprocessing
import os
import shutil
import tempfile
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Sync workers, each one request at a time with one database connection: gunicorn's rule of
# thumb, capped so that a large host does not open more connections than the database takes.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 12)))
# Above 1, each worker serves that many requests at once in threads (gthread), each thread
# with its own database connection, and keeps idle client connections open (keep-alive).
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread" if threads > 1 else "sync")
# Above DB_STATEMENT_TIMEOUT_MS (default 30 s): a slow query is answered 503 by the
# application before gunicorn would kill the worker mid-request.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Recycle workers now and then (staggered), so slow leaks never add up. Not often: a new
# worker spends about 1 s of CPU loading the app and warming up (1 ms per request at 1,000).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "10000"))
max_requests_jitter = max_requests // 10
# The application logs each request itself, as JSON with its request id (loyalty.middleware).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Heartbeat files in memory: a disk-backed /tmp can stall workers in containers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Prometheus (loyalty.metrics): every worker counts its requests into files of one directory,
# emptied when gunicorn starts, so that a scrape of any worker reports all of them. Set
# PROMETHEUS_MULTIPROC_DIR to choose it; by default one per master process, in memory, removed
# when gunicorn stops.
own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
    worker_tmp_dir or tempfile.gettempdir(), f"members-groups-metrics-{os.getpid()}"
)
raw_env = [f"PROMETHEUS_MULTIPROC_DIR={metrics_dir}"]


def on_starting(server: Any) -> None:
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir)


def child_exit(server: Any, worker: Any) -> None:
    # Imported only now: prometheus-client picks its storage when first imported, and the
    # master must not pick it for the workers it forks before PROMETHEUS_MULTIPROC_DIR is set.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, metrics_dir)


def on_exit(server: Any) -> None:
    if own_metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
