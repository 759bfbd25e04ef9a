"""What long commands show as they run: progress (a bar or plain lines) and rejected input.

Shared by the import commands (``import_members``, ``import_group_members``) and the
export (``export_group_members``).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from django.core.management.base import OutputWrapper
from tqdm import tqdm


class TqdmStream:
    """A file-like view of a command's stream: tqdm writes its own line ends and styling."""

    def __init__(self, stream: OutputWrapper) -> None:
        self.stream = stream
        # tqdm draws its bar with Unicode blocks only where the encoding says it can.
        self.encoding = getattr(stream, "encoding", None)

    def write(self, text: str) -> None:
        self.stream.write(text, style_func=str, ending="")

    def flush(self) -> None:
        self.stream.flush()


# What a plain progress line says, given the fraction done and the seconds left.
Line = Callable[[float, float], str]


class Progress:
    """Progress through ``total`` (bytes, lines): a tqdm bar (rate, ETA) on a terminal;
    elsewhere (cron, CI, a pipe) a plain line at most every ``every`` seconds."""

    def __init__(
        self, stream: OutputWrapper, *, total: int, every: float, **bar_options: Any
    ) -> None:
        self.stream = stream
        self.total = total
        self.every = every
        self.started = self.shown = time.monotonic()
        self.bar: tqdm[Any] | None = None
        if stream.isatty():
            self.bar = tqdm(total=total, file=TqdmStream(stream), **bar_options)

    def advance(self, position: int, summary: str, line: Line) -> None:
        """Show that ``position`` of ``total`` is done: on the bar, with ``summary`` beside
        it; else, when a line is due, ``line(fraction done, seconds left)``."""
        if self.bar is not None:
            self.bar.set_postfix_str(summary, refresh=False)
            self.bar.update(position - self.bar.n)
            return
        now = time.monotonic()
        if now - self.shown < self.every:
            return
        self.shown = now
        done = position / self.total if self.total else 1.0
        left = (now - self.started) * (1 - done) / done if done else 0.0
        self.stream.write(line(done, left))

    def close(self, position: int | None = None) -> None:
        """Close the bar, moved to ``position`` first when given."""
        if self.bar is not None:
            if position is not None:
                self.bar.update(position - self.bar.n)
            self.bar.close()


class RejectReport:
    """Rejected input as CSV rows under ``header`` (the line first), written as they come."""

    def __init__(self, file: TextIO, header: Sequence[str]) -> None:
        self.writer = csv.writer(file)
        self.writer.writerow(header)
        self.rows = 0

    def write(self, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        self.writer.writerows(rows)
        self.rows += len(rows)
