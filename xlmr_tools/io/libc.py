"""A C library function through ctypes, or None where there is no C library to load (callers then fall back)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any


def libc_function(
    name: str, argtypes: list[Any], restype: Any = ctypes.c_int, use_errno: bool = False
) -> Callable[..., Any] | None:
    """`use_errno`: the call's errno is kept for ctypes.get_errno()."""
    try:
        fn = getattr(ctypes.CDLL(None, use_errno=use_errno), name)
    except (OSError, AttributeError):
        return None
    fn.restype = restype
    fn.argtypes = argtypes
    return fn
