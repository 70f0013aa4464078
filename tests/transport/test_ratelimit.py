"""Stranger request budget: each limit, and one past it (DESIGN §4)."""

from __future__ import annotations

from transport.ratelimit import (
    REQUESTS_PER_HOUR,
    REQUESTS_PER_MINUTE_PER_ADDRESS,
    RequestLimiter,
)


def test_ten_a_minute_per_address() -> None:
    lim = RequestLimiter()
    assert all(lim.allow("10.0.0.1", t * 0.1) for t in range(REQUESTS_PER_MINUTE_PER_ADDRESS))
    assert not lim.allow("10.0.0.1", 1.5)
    assert lim.allow("10.0.0.2", 1.5)  # another address has its own budget
    assert lim.allow("10.0.0.1", 60.0)  # the first request has left the window


def test_a_hundred_an_hour_in_all() -> None:
    lim = RequestLimiter()
    for i in range(REQUESTS_PER_HOUR):
        assert lim.allow(f"10.0.{i // 250}.{i % 250}", float(i))
    assert not lim.allow("10.9.9.9", 200.0)
    assert lim.allow("10.9.9.9", 3600.0)  # the first has aged out of the hour
