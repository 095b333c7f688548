"""A clock a test moves by hand: pass ``clock`` (it is callable) to the client and to the fake."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class FakeClock:
    """``clock()`` is the current tz-aware UTC time; ``advance(seconds=...)`` moves it forward."""

    def __init__(self, start: datetime = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now

    def timestamp(self) -> int:
        return int(self().timestamp())
