"""What the core reports while it works; the CLI renders it with rich, library callers get nothing by default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Progress(Protocol):
    def stage(self, text: str) -> None: ...
    def start(self, text: str, total: int) -> None: ...
    def advance(self, n: int) -> None: ...

    def step(self, text: str) -> None:
        """The counter from `start` moves on to the step named `text` (a model's stage: "layer 3"): a line in a log,
        the counter's label on a terminal. Steps that last seconds to minutes each (a layer of XL) are reported so,
        not by `advance`."""
        ...

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

    def step(self, text: str) -> None:
        pass

    def bar(self, text: str, total: int) -> Callable[[int], None]:
        return lambda n: None
