"""Installs are reproducible: the lock files pin every package with its hashes, match what
pyproject.toml declares, and a pin changed without refreshing them stops the install."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ("requirements/dev.txt", "requirements/runtime.txt", "requirements/rq.txt")
PIN = re.compile(r"^([a-z0-9][a-z0-9._-]*)==([^ ]+) \\$", re.MULTILINE)


def pins(lock: str) -> dict[str, str]:
    return dict(PIN.findall((ROOT / lock).read_text()))


def check(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/lock", "--check"],
        cwd=folder,
        env={"PY": sys.executable, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_committed_lock_files_match_pyproject() -> None:
    assert check(ROOT).returncode == 0


def test_a_pin_changed_without_refreshing_the_lock_is_refused_with_the_remedy(
    tmp_path: Path,
) -> None:
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    pyproject = (ROOT / "pyproject.toml").read_text()
    changed = pyproject.replace('"tqdm==4.70.1"', '"tqdm==4.70.0"')
    assert changed != pyproject
    (tmp_path / "pyproject.toml").write_text(changed)

    refused = check(tmp_path)

    assert refused.returncode == 1
    assert "requirements/dev.txt does not match the dependencies in pyproject.toml" in (
        refused.stderr
    )
    assert "run 'make lock'" in refused.stderr


def test_a_change_beside_the_dependencies_needs_no_new_lock(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    pyproject = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(
        pyproject.replace("line-length = 100", "line-length = 99")
    )

    assert check(tmp_path).returncode == 0


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_is_pinned_with_its_hashes(lock: str) -> None:
    text = (ROOT / lock).read_text()
    requirements = [line for line in text.splitlines() if line and line[0].isalnum()]

    assert requirements
    assert all(PIN.match(line + "\n") for line in requirements), requirements
    assert text.count("==") == len(requirements)
    assert text.count("    --hash=sha256:") >= len(requirements)
    assert pins(lock)["django"] == "5.2.20"


def test_the_runtime_lock_carries_neither_rq_nor_dev_tools() -> None:
    runtime, rq, dev = (
        pins("requirements/runtime.txt"),
        pins("requirements/rq.txt"),
        pins("requirements/dev.txt"),
    )

    for package in ("rq", "rq-scheduler", "freezegun", "django-rq", "django-tasks-rq", "pytest"):
        assert package not in runtime, package
    assert {"rq", "django-rq", "django-tasks-rq"} <= set(rq)
    assert "pytest" not in rq
    # WhiteNoise writes and serves Brotli copies of the static files only with it.
    assert "brotli" in runtime
    # One resolution: the smaller locks take the versions of the full one.
    assert all(dev[name] == version for name, version in {**runtime, **rq}.items())


def test_the_rq_apps_are_installed_only_with_the_rq_backend() -> None:
    assert settings.TASK_BACKEND != "django_tasks_rq.RQBackend"
    assert "django_rq" not in settings.INSTALLED_APPS
    assert "django_tasks_rq" not in settings.INSTALLED_APPS
