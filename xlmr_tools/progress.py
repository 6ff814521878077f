"""What the core reports while it works; the CLI renders it with rich, library callers get nothing by default."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def stage(self, text: str) -> None: ...
    def start(self, text: str, total: int) -> None: ...
    def advance(self, n: int) -> None: ...


class NoProgress:
    def stage(self, text: str) -> None: pass
    def start(self, text: str, total: int) -> None: pass
    def advance(self, n: int) -> None: pass
