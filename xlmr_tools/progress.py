"""What the core reports while it works; the CLI renders it with rich, library callers get nothing by default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Progress(Protocol):
    def stage(self, text: str) -> None: ...
    def start(self, text: str, total: int) -> None: ...
    def advance(self, n: int) -> None: ...

    def bar(self, text: str, total: int) -> Callable[[int], None]:
        """Another bar beside the current one (until the next stage/start); the returned function advances it and
        may be called from any thread: work done by two threads at once gets a bar each."""
        ...


class NoProgress:
    def stage(self, text: str) -> None:
        pass

    def start(self, text: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def bar(self, text: str, total: int) -> Callable[[int], None]:
        return lambda n: None
