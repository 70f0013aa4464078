"""Finding Cove devices on the local network with mDNS / DNS-SD (DESIGN §5, §9).

Theory of operation. A :class:`Discovery` owns one zeroconf instance bound to
the chosen interfaces (``transport.interfaces``), always by an explicit
address list. It announces this device as ``<token>._cove._tcp.local.``, the
token random and new at each start (never a person's name), under a random
host name, with TXT ``{v: "1", dev: base32(did)}`` and only the chosen
addresses. Discoverable mode (§5: explicit and time-limited like AirDrop's
"everyone", 10 minutes by default) adds ``name`` and ``aid`` to the TXT and
reverts by itself when it expires, timed on the event loop's clock.

Browsing (``transport.discovery_browser``) turns other devices' untrusted
announcements into :class:`PeerSeen` and :class:`PeerGone` events, checked by
``transport.discovery_records``. Addresses in events are candidates: the
dialler still applies ``transport.interfaces.may_dial`` and checks that
``dev`` names the responder's Noise static key (§4).

Events reach the caller through ``async for event in discovery`` (one reader;
each ``anext`` is cancel-safe, so ``asyncio.wait_for(anext(d), t)`` is fine),
and, if given, a synchronous ``on_event`` callback run on the event loop. The
stream ends when the Discovery closes; :attr:`Discovery.peers` is always
current even when a slow reader made the queue drop old events.

Device linking (§9) uses ``_cove-link._tcp.local.`` with TXT ``{v: "1", np}``:
:meth:`Discovery.announce_nameplate` and :meth:`Discovery.find_nameplate`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any

from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from crypto.errors import LocalProtocolError
from crypto.identity import AID_LEN, DID_LEN, check_name, id_to_text
from transport import discovery_browser as browsing
from transport.discovery_browser import LINK_SERVICE_TYPE, SERVICE_TYPE, PeerBrowser, instance_of
from transport.discovery_records import (
    MAX_PEERS,
    TXT_VERSION,
    DiscoveryEvent,
    PeerGone,
    PeerSeen,
    PeerTable,
)
from transport.errors import DiscoveryError
from transport.interfaces import (
    announced_addresses,
    local_addresses,
    loopback_only,
    mdns_interfaces,
)

__all__ = ["LINK_SERVICE_TYPE", "SERVICE_TYPE", "Discovery", "DiscoveryEvent"]
__all__ += ["PeerGone", "PeerSeen"]

log = logging.getLogger(__name__)

DISCOVERABLE_S = 600.0
"""How long discoverable mode lasts unless the caller asks otherwise (§5)."""
MAX_DISCOVERABLE_S = 3600.0
"""Longest discoverable period one call may ask for."""
RECORD_TTL_S = 120
"""TTL of our SRV, TXT and address records (RFC 6762 §10's host-record TTL): it
bounds how long others keep seeing this device if it dies without goodbyes."""
REPUBLISH_SPACING_S = 1.0
"""Least time between two announcements of one service (see ``_publish``)."""
MAX_NAMEPLATE_CHARS = 8
"""Longest nameplate, in decimal digits."""
INSTANCE_TOKEN_BYTES = 10
"""Random bytes in an instance or host name (80 bits, 16 base32 characters)."""


def new_instance_token() -> str:
    """A fresh random DNS label, unlinkable to the person and to earlier runs."""
    return id_to_text(secrets.token_bytes(INSTANCE_TOKEN_BYTES))


def check_nameplate(nameplate: str) -> str:
    """Check a nameplate: 1 to ``MAX_NAMEPLATE_CHARS`` ASCII digits (§9)."""
    if not (
        isinstance(nameplate, str)
        and 0 < len(nameplate) <= MAX_NAMEPLATE_CHARS
        and nameplate.isascii()
        and nameplate.isdigit()
    ):
        raise LocalProtocolError(f"a nameplate is 1 to {MAX_NAMEPLATE_CHARS} digits")
    return nameplate


class Discovery:
    """Announce this device and watch for others on the chosen interfaces (§5).

    ``addresses`` are the chosen interfaces' addresses. With ``did`` set, the
    device is announced on ``port`` (the link listener's); without it nothing
    is announced but nameplates (a new device waiting to be linked, §9).
    ``browse=False`` skips watching for peers. ``record_ttl`` and the
    liveness settings exist for tests; see ``transport.discovery_browser``.
    Use as ``async with Discovery(...) as d``, or :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        addresses: Sequence[str],
        *,
        did: bytes | None = None,
        port: int = 0,
        browse: bool = True,
        on_event: Callable[[DiscoveryEvent], None] | None = None,
        record_ttl: int = RECORD_TTL_S,
        liveness_interval: float = browsing.LIVENESS_INTERVAL_S,
        liveness_timeout: float = browsing.LIVENESS_TIMEOUT_S,
        max_peers: int = MAX_PEERS,
    ) -> None:
        if did is not None and (not isinstance(did, bytes) or len(did) != DID_LEN):
            raise LocalProtocolError(f"a device id is {DID_LEN} bytes")
        if did is not None and not 0 < port < 65536:
            raise LocalProtocolError("an announced port must be 1 to 65535")
        self._addresses = tuple(addresses)
        self._check_addresses(self._addresses)
        self._did = did
        self._port = port
        self._browse = browse
        self._ttl = record_ttl
        self._browser = PeerBrowser(
            # Loopback addresses in another device's announcement are kept only when this
            # device itself listens on loopback alone (tests, a lab namespace).
            PeerTable(max_peers, keep_loopback=loopback_only(self._addresses)),
            on_event=on_event,
            liveness_interval=liveness_interval,
            liveness_timeout=liveness_timeout,
        )
        self._zc: AsyncZeroconf | None = None
        self._host = ""
        self._info: AsyncServiceInfo | None = None
        self._nameplate: AsyncServiceInfo | None = None
        self._discoverable: tuple[str, bytes] | None = None
        self._discoverable_until: float | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._announcing: dict[str, asyncio.Task[None]] = {}
        self._published_at: dict[str, float] = {}
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open zeroconf on the chosen interfaces, browse, and announce (after probing)."""
        if self._zc is not None or self._closed:
            raise LocalProtocolError("a Discovery starts once")
        try:
            # Made here, inside the running loop, so zeroconf runs on it, not on a thread.
            self._zc = AsyncZeroconf(interfaces=self._mdns_interfaces())
        except (OSError, RuntimeError, ValueError) as exc:
            raise DiscoveryError(
                f"local network discovery could not start ({exc}); check the interfaces setting"
            ) from exc
        self._host = new_instance_token()
        if self._browse:
            self._browser.start(self._zc.zeroconf, lambda: self.instance)
        if self._did is None:
            return
        try:
            async with self._lock:
                self._info = self._service_info(SERVICE_TYPE, self._port, self._txt())
                await self._publish(self._info, register=True)
        except Exception as exc:
            await self.close()
            raise DiscoveryError(
                f"this device could not be announced on the local network ({exc})"
            ) from exc

    async def close(self) -> None:
        """Withdraw our services with mDNS goodbyes, stop browsing, end the event stream.

        Closing twice is harmless.
        """
        if self._closed:
            return
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._browser.close()
        if self._zc is not None:
            # async_close sends goodbyes for every registered service, then shuts down.
            await self._zc.async_close()

    async def __aenter__(self) -> Discovery:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what the caller reads -------------------------------------------------------

    @property
    def instance(self) -> str | None:
        """Our own instance label (the random token), once announced."""
        return instance_of(self._info.name, SERVICE_TYPE) if self._info else None

    @property
    def peers(self) -> Mapping[str, PeerSeen]:
        """The peers seen now, by instance label: a read-only live view."""
        return MappingProxyType(self._browser.peers)

    @property
    def dropped_events(self) -> int:
        """Events dropped because nobody read them in time."""
        return self._browser.dropped_events

    @property
    def discoverable_until(self) -> float | None:
        """When discoverable mode ends, on the event loop's clock; None when it is off."""
        return self._discoverable_until

    def __aiter__(self) -> Discovery:
        return self

    async def __anext__(self) -> DiscoveryEvent:
        return await anext(self._browser)

    # -- discoverable mode (§5) --------------------------------------------------------

    async def set_discoverable(
        self, name: str, aid: bytes, duration: float = DISCOVERABLE_S
    ) -> None:
        """Add ``name`` and ``aid`` to our TXT for ``duration`` seconds so strangers nearby
        can send a request (§6); calling again restarts the period."""
        if self._did is None:
            raise LocalProtocolError("only an announced device can be discoverable")
        check_name(name)
        if not isinstance(aid, bytes) or len(aid) != AID_LEN:
            raise LocalProtocolError(f"an account id is {AID_LEN} bytes")
        if not 0 < duration <= MAX_DISCOVERABLE_S:
            raise LocalProtocolError(f"discoverable mode lasts 0 to {MAX_DISCOVERABLE_S:.0f} s")
        loop = asyncio.get_running_loop()
        if self._expiry is not None:
            self._expiry.cancel()
        self._discoverable = (name, aid)
        self._discoverable_until = loop.time() + duration
        self._expiry = loop.call_at(self._discoverable_until, self._on_discoverable_expired)
        await self._republish()

    async def leave_discoverable(self) -> None:
        """Drop ``name`` and ``aid`` from our TXT now."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._discoverable is None:
            return
        self._discoverable = None
        self._discoverable_until = None
        await self._republish()

    def _on_discoverable_expired(self) -> None:
        self._expiry = None
        if not self._closed:
            self._spawn(self.leave_discoverable())

    async def set_addresses(self, addresses: Sequence[str]) -> None:
        """Follow a change of the chosen addresses: move zeroconf and re-announce."""
        self._check_addresses(addresses)
        zc = self._running()
        self._addresses = tuple(addresses)
        self._browser.table.keep_loopback = loopback_only(self._addresses)
        # Records first: zeroconf re-announces what it holds on the new sockets,
        # and the old addresses must not be refreshed in peers' caches.
        await self._republish()
        async with self._lock:
            await zc.async_update_interfaces(self._mdns_interfaces())

    # -- nameplates for device linking (§9) ------------------------------------------

    async def announce_nameplate(self, nameplate: str, port: int) -> None:
        """Announce ``_cove-link._tcp`` with TXT ``{v: "1", np}`` on ``port``, replacing any
        earlier nameplate."""
        check_nameplate(nameplate)
        await self.withdraw_nameplate()
        async with self._lock:
            info = self._service_info(LINK_SERVICE_TYPE, port, {"v": TXT_VERSION, "np": nameplate})
            await self._publish(info, register=True)
            self._nameplate = info

    async def withdraw_nameplate(self) -> None:
        """Stop announcing the nameplate, with goodbyes so finders forget it."""
        async with self._lock:
            info, self._nameplate = self._nameplate, None
            if info is not None and not self._closed:
                await (await self._running().async_unregister_service(info))

    async def find_nameplate(self, nameplate: str, timeout: float) -> list[tuple[str, int]]:
        """The ``(host, port)`` addresses of the device announcing ``nameplate``, or ``[]``
        when none answers within ``timeout`` seconds."""
        check_nameplate(nameplate)
        own = self._nameplate.name.lower() if self._nameplate else None
        return await browsing.find_nameplate(self._running().zeroconf, nameplate, timeout, own)

    # -- announcing --------------------------------------------------------------------

    def _txt(self) -> dict[str, str]:
        assert self._did is not None
        txt = {"v": TXT_VERSION, "dev": id_to_text(self._did)}
        if self._discoverable is not None:
            name, aid = self._discoverable
            txt |= {"name": name, "aid": id_to_text(aid)}
        return txt

    def _service_info(
        self, type_: str, port: int, txt: Mapping[str, str | bytes | None], name: str = ""
    ) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            type_,
            name or f"{new_instance_token()}.{type_}",
            port=port,
            properties=dict(txt),
            server=f"{self._host}.local.",
            parsed_addresses=announced_addresses(self._addresses),
            host_ttl=self._ttl,
            other_ttl=self._ttl,
        )

    async def _republish(self) -> None:
        """Re-announce our services after a change of TXT or addresses."""
        async with self._lock:
            if self._closed or self._zc is None:
                return
            if self._info is not None:
                old = self._info
                self._info = self._service_info(SERVICE_TYPE, self._port, self._txt(), old.name)
                await self._publish(self._info, register=False)
            if self._nameplate is not None:
                old = self._nameplate
                txt = {key.decode(): value for key, value in old.properties.items()}
                port = old.port or 0
                self._nameplate = self._service_info(LINK_SERVICE_TYPE, port, txt, old.name)
                await self._publish(self._nameplate, register=False)

    async def _publish(self, info: AsyncServiceInfo, *, register: bool) -> None:
        zc = self._running()
        loop = asyncio.get_running_loop()
        key = info.name.lower()
        # zeroconf drops a packet identical to one it first saw under 0.8 s
        # ago, so switching back to an earlier TXT sooner would go unheard.
        since = loop.time() - self._published_at.get(key, -REPUBLISH_SPACING_S)
        if since < REPUBLISH_SPACING_S:
            await asyncio.sleep(REPUBLISH_SPACING_S - since)
        # Stop repeating the previous version: a late repeat of the old TXT
        # would otherwise arrive after the new one and win in peers' caches.
        previous = self._announcing.pop(key, None)
        if previous is not None:
            previous.cancel()
        # The first await probes (register) or sends the update; the awaitable
        # it returns only repeats the announcement, so that runs in the background.
        if register:
            announcing = await zc.async_register_service(info)
        else:
            announcing = await zc.async_update_service(info)
        self._published_at[key] = loop.time()
        self._announcing[key] = self._spawn(_announce(announcing))

    def _running(self) -> AsyncZeroconf:
        if self._zc is None or self._closed:
            raise LocalProtocolError("this Discovery is not running")
        return self._zc

    def _mdns_interfaces(self) -> list[str]:
        # Reading the interface table only; nothing is sent.
        return mdns_interfaces(self._addresses, local_addresses())

    @staticmethod
    def _check_addresses(addresses: Sequence[str]) -> None:
        try:
            usable = mdns_interfaces(addresses)
        except ValueError as exc:
            raise DiscoveryError(f"discovery was given a bad address ({exc})") from exc
        if not usable:
            raise DiscoveryError(
                "discovery needs an IPv4 or non-loopback IPv6 address; "
                "add one to the interfaces setting or turn discovery off"
            )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def _announce(announcing: Any) -> None:
    try:
        await announcing
    except Exception:
        # A lost repeat announcement is not fatal: peers ask again (RFC 6762 §5.2).
        log.warning("an mDNS announcement failed", exc_info=True)
