"""What both sides of device linking share on the asyncio side (DESIGN §9).

:class:`LinkWire` moves frames over one byte stream (``transport.frames``'
2-byte length framing) and whole messages over a :class:`LinkChannel`;
:class:`LinkTimings` holds every wait's bound, :class:`LinkStatus` is what
the person watching is told. The protocol lives in the sans-I/O modules
(``cove.link_handshake``, ``cove.link_messages``, ``cove.link_transfer``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cove.link_errors import BadLinkAddress
from cove.link_handshake import LinkChannel, LinkHandshake
from cove.link_messages import LinkMessage, decode_link_message, encode_link_message
from crypto.errors import RemoteProtocolError
from transport.frames import FrameDecoder, encode_frame
from transport.stream import ByteStream


@dataclass(frozen=True, slots=True)
class LinkTimings:
    """Seconds each wait may last; tests shorten them."""

    handshake: float = 10.0
    """From a connection to the verified handshake and the hello."""
    confirm: float = 300.0
    """How long the new device waits while the person at the primary decides."""
    idle: float = 60.0
    """Longest silence while the state moves (and while the new device stores it)."""
    poll: float = 1.0
    """How often the waiting device looks at its clock for the code's expiry."""


DEFAULT_TIMINGS = LinkTimings()


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """A line for the person watching, with progress counts while the state moves."""

    text: str
    done: int = 0
    total: int = 0

    def __str__(self) -> str:
        return self.text


StatusCallback = Callable[[LinkStatus], None]


def wall_ms() -> int:
    """Milliseconds since the epoch, the default clock."""
    return time.time_ns() // 1_000_000


def parse_link_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as typed by a person; BadLinkAddress if not."""
    host, sep, port = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadLinkAddress("An address looks like HOST:PORT, for example 192.168.1.20:47000.")
    return host, int(port)


class PeerClosed(RemoteProtocolError):
    """The peer closed the connection."""


class LinkWire:
    """Frames in both directions over one stream, and whole messages over a channel."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self._decoder = FrameDecoder()
        self._frames: list[bytes] = []

    async def frame(self) -> bytes:
        """The next frame body; PeerClosed once the stream ends."""
        while not self._frames:
            data = await self.stream.read()
            if not data:
                raise PeerClosed("the peer closed the connection")
            self._frames.extend(self._decoder.feed(data))
        return self._frames.pop(0)

    async def send_frames(self, bodies: list[bytes]) -> None:
        """Write frame bodies, each with its length, and wait for the stream to drain."""
        for body in bodies:
            self.stream.write(encode_frame(body))
        await self.stream.drain()

    async def send(self, channel: LinkChannel, message: LinkMessage) -> None:
        """Encrypt and send one message on the channel."""
        await self.send_frames(channel.seal(encode_link_message(message)))

    async def receive(self, channel: LinkChannel) -> LinkMessage:
        """The next whole message from the channel; RemoteProtocolError on bad input."""
        while (data := channel.open(await self.frame())) is None:
            pass
        return decode_link_message(data)

    async def handshake(self, handshake: LinkHandshake) -> LinkChannel:
        """Run a linking handshake to its end (the caller bounds it in time)."""
        await self.send_frames(handshake.start())
        while not handshake.is_finished:
            await self.send_frames(handshake.receive(await self.frame()))
        return handshake.into_channel()
