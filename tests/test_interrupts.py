"""interrupts.deferred_interrupts: a signal inside the block takes effect at its end, through the handler that was
in place."""

from __future__ import annotations

import signal
import threading

import pytest
from conftest import raise_terminated

from xlmr_tools.errors import Terminated
from xlmr_tools.interrupts import deferred_interrupts


def test_a_signal_inside_takes_effect_at_the_end(sigterm_handler):
    sigterm_handler(raise_terminated)
    after = []
    with pytest.raises(Terminated), deferred_interrupts():
        signal.raise_signal(signal.SIGTERM)
        after.append("the block ran on")
    assert after == ["the block ran on"]
    assert signal.getsignal(signal.SIGTERM) is raise_terminated


def test_no_signal_no_effect_and_an_ignored_one_stays_ignored(sigterm_handler):
    sigterm_handler(raise_terminated)
    with deferred_interrupts():
        pass
    assert signal.getsignal(signal.SIGTERM) is raise_terminated
    sigterm_handler(signal.SIG_IGN)
    with deferred_interrupts():
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def test_off_the_main_thread_it_does_nothing():
    errors: list[BaseException] = []

    def body() -> None:
        try:
            with deferred_interrupts():  # signal.signal would raise ValueError here
                pass
        except BaseException as e:  # noqa: BLE001 - reported to the test
            errors.append(e)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert errors == []
