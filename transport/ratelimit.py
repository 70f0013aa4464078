"""The budget for requests from strangers (DESIGN §4): 10 a minute per address, 100 an hour.

Sliding windows over the times of requests already let through. Sans-I/O:
the caller passes ``now`` (seconds, any monotonic clock).
"""

from __future__ import annotations

from collections import deque

REQUESTS_PER_MINUTE_PER_ADDRESS = 10
REQUESTS_PER_HOUR = 100
MAX_TRACKED_ADDRESSES = 4096


class RequestLimiter:
    """Decides whether one more stranger request may pass."""

    def __init__(
        self,
        per_address_per_minute: int = REQUESTS_PER_MINUTE_PER_ADDRESS,
        per_hour: int = REQUESTS_PER_HOUR,
    ) -> None:
        self._per_address = per_address_per_minute
        self._per_hour = per_hour
        self._by_address: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def allow(self, address: str, now: float) -> bool:
        """Record and allow a request from ``address`` at ``now``, or refuse it."""
        while self._all and now - self._all[0] >= 3600:
            self._all.popleft()
        recent = self._by_address.get(address)
        if recent is not None:
            while recent and now - recent[0] >= 60:
                recent.popleft()
        if len(self._all) >= self._per_hour:
            return False
        if recent is not None and len(recent) >= self._per_address:
            return False
        if recent is None:
            if len(self._by_address) >= MAX_TRACKED_ADDRESSES:
                self._forget_idle(now)
            recent = self._by_address.setdefault(address, deque())
        recent.append(now)
        self._all.append(now)
        return True

    def _forget_idle(self, now: float) -> None:
        for address in [a for a, q in self._by_address.items() if not q or now - q[-1] >= 60]:
            del self._by_address[address]
