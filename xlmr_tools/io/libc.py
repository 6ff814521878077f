"""A C library function through ctypes, or None where there is no C library to load (callers then fall back)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any


def libc_function(name: str, argtypes: list[Any], restype: Any = ctypes.c_int) -> Callable[..., Any] | None:
    try:
        fn = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    fn.restype = restype
    fn.argtypes = argtypes
    return fn
