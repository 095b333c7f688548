"""Time: always timezone-aware UTC inside datong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A naive time from a Chinese export is local time in China (UTC+8)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=CHINA_TZ)
    return value.astimezone(UTC)


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """``2026-10`` → the month in China time, as [start, end)."""
    try:
        year_text, month_text = period.split("-")
        year, month = int(year_text), int(month_text)
        start = datetime(year, month, 1, tzinfo=CHINA_TZ)
    except ValueError:
        raise ValueError("a period is a month written YYYY-MM, e.g. 2026-10") from None
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=CHINA_TZ)
    return start, end
