"""Polling, for the lab tool, the Molecule verifiers and the unit tests' loopback servers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def until(check: Callable[[], T], timeout: float = 20, step: float = 0.1) -> T:
    """``check()``'s first true value within ``timeout`` seconds (polled every ``step``
    seconds), else its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(step)
    return check()
