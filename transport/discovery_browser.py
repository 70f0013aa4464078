"""Watching the local network for Cove devices and nameplates (DESIGN §5, §9).

A :class:`PeerBrowser` browses ``_cove._tcp.local.`` on a running zeroconf.
Whenever zeroconf reports an instance, and on every sweep, it reads the
instance's announcement from zeroconf's cache (:func:`cached_announcement`:
the latest live SRV and TXT and the SRV target's live addresses) and feeds
it to the pure :class:`transport.discovery_records.PeerTable`, which decides
what is a :class:`PeerSeen` or :class:`PeerGone`. Reading the cache, rather
than trusting zeroconf's change reports alone, matters: a TXT that changes
back to a value still cached (discoverable mode switched off soon after it
was switched on) is not reported as a change, and for a moment two TXT
records are live, of which the latest is the truth. When the cache lacks a
piece, the instance is asked for it (one query task per instance).

Goodbyes (a peer that closed cleanly) arrive as zeroconf "removed" events and
become :class:`PeerGone` at once. A peer that died sends none, and zeroconf
keeps a PTR record for at least 1125 s whatever TTL the peer gave, so a
liveness sweep watches each peer's records instead (RFC 6762 §5.2 cache
maintenance): once they expire the peer is asked again with a QM question,
whose multicast answer refreshes every other device's cache too, and a peer
that does not answer within the liveness timeout is gone. Should it answer
someone later (it was only unreachable for a while), the sweep finds it in
the cache again and reports it seen.

:func:`find_nameplate` browses ``_cove-link._tcp.local.`` for one nameplate.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable

from zeroconf import DNSQuestionType, ServiceStateChange, Zeroconf, current_time_millis

# zeroconf re-exports these from its package without listing them in __all__,
# which strict mypy will not accept; _dns is where they are defined.
from zeroconf._dns import DNSAddress, DNSRecord, DNSService, DNSText
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo

from transport.discovery_records import (
    DiscoveryEvent,
    PeerSeen,
    PeerTable,
    bounded_addresses,
    nameplate_matches,
    parse_txt,
)

log = logging.getLogger(__name__)

SERVICE_TYPE = "_cove._tcp.local."
LINK_SERVICE_TYPE = "_cove-link._tcp.local."
LIVENESS_INTERVAL_S = 5.0
"""How often each peer is compared with zeroconf's cache and checked for expiry."""
LIVENESS_TIMEOUT_S = 3.0
"""How long a peer whose records expired has to answer before it is gone."""
RESOLVE_TIMEOUT_S = 3.0
"""How long to wait for a newly seen peer's SRV, TXT and addresses."""
MAX_QUEUED_EVENTS = 1024
"""Events kept for a slow reader; the oldest are dropped first."""
MAX_NAMEPLATE_CANDIDATES = 32
"""Most ``_cove-link`` services one :func:`find_nameplate` examines."""

# DNS record types and class (RFC 1035, RFC 2782 SRV, RFC 3596 AAAA).
_DNS_TYPE_A = 1
_DNS_TYPE_TXT = 16
_DNS_TYPE_AAAA = 28
_DNS_TYPE_SRV = 33
_DNS_CLASS_IN = 1


class PeerBrowser:
    """Turn ``_cove._tcp`` announcements into events, delivered by ``async for`` and
    an optional synchronous callback; see the module docstring."""

    def __init__(
        self,
        table: PeerTable,
        *,
        on_event: Callable[[DiscoveryEvent], None] | None = None,
        liveness_interval: float = LIVENESS_INTERVAL_S,
        liveness_timeout: float = LIVENESS_TIMEOUT_S,
    ) -> None:
        self.table = table
        self.dropped_events = 0
        """Events dropped because nobody read them in time."""
        self._on_event = on_event
        self._liveness_interval = liveness_interval
        self._liveness_timeout = liveness_timeout
        self._queue: asyncio.Queue[DiscoveryEvent | None] = asyncio.Queue()
        self._zc: Zeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._own: Callable[[], str | None] = lambda: None
        self._watcher: asyncio.Task[None] | None = None
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._lost: dict[str, None] = {}
        """Instances that failed a liveness check, oldest first, watched for a return."""
        self._closed = False

    def start(self, zc: Zeroconf, own_instance: Callable[[], str | None]) -> None:
        """Browse on ``zc``, ignoring our own instance (``own_instance()``)."""
        self._zc = zc
        self._own = own_instance
        self._browser = AsyncServiceBrowser(zc, SERVICE_TYPE, handlers=[self._on_service_change])
        self._watcher = asyncio.get_running_loop().create_task(self._sweep())

    async def close(self) -> None:
        """Stop browsing and end the event stream; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        tasks = [*self._resolving.values(), *([self._watcher] if self._watcher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._browser is not None:
            await self._browser.async_cancel()
        self._put(None)

    def __aiter__(self) -> PeerBrowser:
        return self

    async def __anext__(self) -> DiscoveryEvent:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)  # every later reader stops too
            raise StopAsyncIteration
        return event

    @property
    def peers(self) -> dict[str, PeerSeen]:
        """The peers seen now, by instance label."""
        return self.table.peers

    # -- zeroconf's side ---------------------------------------------------------------

    def _on_service_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        """Zeroconf's browser callback, run on the event loop; it must not block."""
        instance = instance_of(name, SERVICE_TYPE)
        if instance is None or self._closed or instance == self._own():
            return
        if state_change is ServiceStateChange.Removed:
            self._lost.pop(instance, None)
            task = self._resolving.pop(instance, None)
            if task is not None:
                task.cancel()
            self._emit(self.table.remove(instance))
        elif not self._refresh(instance):
            self._request_resolve(instance, liveness=False)

    def _refresh(self, instance: str) -> bool:
        """Bring the table up to date from the cache; False when the cache lacks a piece."""
        assert self._zc is not None
        name = f"{instance}.{SERVICE_TYPE}"
        found = cached_announcement(self._zc, name, current_time_millis())
        if found is None:
            return False
        self._emit(self.table.update(instance, *found))
        return True

    def _request_resolve(self, instance: str, *, liveness: bool) -> None:
        if instance in self._resolving or len(self._resolving) >= self.table.max_peers:
            return
        task = asyncio.get_running_loop().create_task(self._resolve(instance, liveness))
        self._resolving[instance] = task

    async def _resolve(self, instance: str, liveness: bool) -> None:
        """Ask the network for the missing records, then read the cache again."""
        assert self._zc is not None
        try:
            info = AsyncServiceInfo(SERVICE_TYPE, f"{instance}.{SERVICE_TYPE}")
            # A liveness check asks with QM so that the answer, multicast,
            # refreshes every other Cove device's cache as well.
            timeout = self._liveness_timeout if liveness else RESOLVE_TIMEOUT_S
            kind = DNSQuestionType.QM if liveness else None
            # Its result is not used: the cache, read next, is the one truth.
            await info.async_request(self._zc, timeout * 1000, question_type=kind)
            if not self._refresh(instance) and liveness:
                self._emit(self.table.remove(instance))
                self._lost[instance] = None
                if len(self._lost) > self.table.max_peers:
                    del self._lost[next(iter(self._lost))]
        finally:
            if self._resolving.get(instance) is asyncio.current_task():
                del self._resolving[instance]

    async def _sweep(self) -> None:
        """Every interval, re-read each peer from the cache and ask after expired ones."""
        while True:
            await asyncio.sleep(self._liveness_interval)
            for instance in list(self.table.peers):
                if instance not in self._resolving and not self._refresh(instance):
                    self._request_resolve(instance, liveness=True)
            for instance in list(self._lost):
                if self._refresh(instance):  # it answered someone: back again
                    del self._lost[instance]

    # -- events ------------------------------------------------------------------------

    def _emit(self, event: DiscoveryEvent | None) -> None:
        if event is None:
            return
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("a discovery event callback failed")
        self._put(event)

    def _put(self, item: DiscoveryEvent | None) -> None:
        if self._queue.qsize() >= MAX_QUEUED_EVENTS:
            self._queue.get_nowait()
            self.dropped_events += 1
        self._queue.put_nowait(item)


async def find_nameplate(
    zc: Zeroconf, nameplate: str, timeout: float, ignore: str | None = None
) -> list[tuple[str, int]]:
    """The ``(host, port)`` addresses of the first ``_cove-link`` service whose TXT is
    ``{v: "1", np: nameplate}`` (§9), or ``[]`` after ``timeout`` seconds.

    ``ignore`` is a service name to pass over (our own nameplate).
    """
    loop = asyncio.get_running_loop()
    found: asyncio.Future[list[tuple[str, int]]] = loop.create_future()
    tried: set[str] = set()
    checks: set[asyncio.Task[None]] = set()

    async def check(name: str) -> None:
        await AsyncServiceInfo(LINK_SERVICE_TYPE, name).async_request(zc, timeout * 1000)
        announced = cached_announcement(zc, name, current_time_millis())
        if announced is None:
            return
        properties, hosts, port = announced
        addresses = bounded_addresses(hosts, port)
        if nameplate_matches(properties, nameplate) and addresses and not found.done():
            found.set_result(list(addresses))

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        key = name.lower()
        if state_change is ServiceStateChange.Removed or key in tried or key == ignore:
            return
        # Each candidate is resolved at once and in parallel, so a hostile
        # service that never answers cannot hold up the real one.
        if len(tried) < MAX_NAMEPLATE_CANDIDATES:
            tried.add(key)
            checks.add(loop.create_task(check(name)))

    browser = AsyncServiceBrowser(zc, LINK_SERVICE_TYPE, handlers=[on_change])
    try:
        return await asyncio.wait_for(found, timeout)
    except TimeoutError:
        return []
    finally:
        for task in checks:
            task.cancel()
        await asyncio.gather(*checks, return_exceptions=True)
        await browser.async_cancel()


def cached_announcement(
    zc: Zeroconf, name: str, now: float
) -> tuple[dict[bytes, bytes | None], list[str], int] | None:
    """TXT properties, addresses and port of service ``name`` as zeroconf's cache holds
    them now, or None when a live SRV, TXT or address is missing.

    When two copies are live, the one that lives longest wins: right after a
    change the previous copy is kept for one more second (RFC 6762 §10.2),
    and zeroconf marks it so by restarting it with a one-second TTL.
    """
    cache = zc.cache
    srv = _longest_lived(cache.async_all_by_details(name, _DNS_TYPE_SRV, _DNS_CLASS_IN), now)
    txt = _longest_lived(cache.async_all_by_details(name, _DNS_TYPE_TXT, _DNS_CLASS_IN), now)
    if not isinstance(srv, DNSService) or not isinstance(txt, DNSText):
        return None
    hosts: list[str] = []
    for type_ in (_DNS_TYPE_A, _DNS_TYPE_AAAA):
        for record in cache.async_all_by_details(srv.server, type_, _DNS_CLASS_IN):
            if isinstance(record, DNSAddress) and not record.is_expired(now):
                hosts.extend(_host_text(record))
    if not hosts:
        return None
    return parse_txt(txt.text), hosts, srv.port


def _longest_lived(records: list[DNSRecord], now: float) -> DNSRecord | None:
    live = [record for record in records if not record.is_expired(now)]
    return max(live, key=lambda record: record.get_expiration_time(100), default=None)


def _host_text(record: DNSAddress) -> list[str]:
    try:
        address = ipaddress.ip_address(record.address)
    except ValueError:
        return []
    if address.version == 6 and record.scope_id:
        return [f"{address}%{record.scope_id}"]
    return [str(address)]


def instance_of(name: str, type_: str) -> str | None:
    """The instance label of ``<label>.<type>``, lower-cased (DNS names are case-blind)."""
    suffix = "." + type_
    if len(name) <= len(suffix) or not name.lower().endswith(suffix.lower()):
        return None
    return name[: -len(suffix)].lower()
