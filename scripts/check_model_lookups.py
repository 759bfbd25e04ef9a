"""Refuse app code that looks models up by name across apps (part of `make test`).

import-linter sees imports only: ``apps.get_model("groups", "Membership")`` would let a
lower app read a higher app's tables unseen. Outside migrations (which must use their
historical ``state.apps``), app code may not touch the global app registry
(``django.apps.apps``) nor name another app's model in a ``get_model`` call.

Usage: python scripts/check_model_lookups.py [PACKAGE_DIR ...]; exit 1 and name each
offence when there is one.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

APPS = ("loyalty", "members", "audiences", "groups")
ROOT = Path(__file__).resolve().parent.parent


def _label(value: str) -> str:
    """The app label a ``get_model`` argument names ("groups" or "groups.Membership")."""
    return value.split(".", 1)[0]


def offences(source: str, own_app: str) -> Iterator[tuple[int, str]]:
    """Each (line, what) in ``source`` of app ``own_app`` that looks a model up by name."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "django.apps":
            if any(alias.name == "apps" for alias in node.names):
                yield node.lineno, "imports the global app registry (django.apps.apps)"
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in ("get_model", "get_models", "get_app_config"):
                continue
            first = node.args[0] if node.args else None
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and _label(first.value) != own_app
            ):
                yield node.lineno, f"looks up {first.value!r} by name"


def check(packages: list[Path]) -> list[str]:
    found = []
    for package in packages:
        own_app = package.name
        for path in sorted(package.rglob("*.py")):
            if "migrations" in path.relative_to(package).parts:
                continue
            for line, what in offences(path.read_text(encoding="utf-8"), own_app):
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                found.append(f"{shown}:{line}: {what}")
    return found


def main(argv: list[str]) -> int:
    packages = [Path(arg).resolve() for arg in argv] or [ROOT / app for app in APPS]
    found = check(packages)
    for offence in found:
        sys.stdout.write(f"{offence}\n")
    if found:
        sys.stdout.write(
            f"{len(found)} model lookup(s) by name outside migrations: import the model, "
            "follow a relation, or let the caller hand it over.\n"
        )
        return 1
    names = ", ".join(package.name for package in packages)
    sys.stdout.write(f"No model looked up by name across apps ({names}).\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
