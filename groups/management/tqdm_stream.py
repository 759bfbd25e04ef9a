"""Let tqdm draw its progress bar on a management command's output."""

from __future__ import annotations

from django.core.management.base import OutputWrapper


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
