"""Events a Peer reports, stored with a cursor that only grows (DESIGN §13).

Each event is a frozen dataclass; its ``type`` is the snake_case class
name. Events that matter after a restart are stored in the ``events`` table
in the same transaction as the change they report, so ``events(since=c)``
replays exactly what happened after cursor ``c``: a bot that restarts
misses nothing and sees nothing twice. Strings from peers are stored as
received and made printable where they are shown (``transport.plaintext``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from cove.store import Store
from crypto.encoding import pack, unpack_map

MAX_EVENT_BYTES = 256 * 1024


@dataclass(frozen=True)
class Event:
    """Base of every event; ``cursor`` is set once the event is stored."""

    registry: ClassVar[dict[str, type[Event]]] = {}
    cursor: int = dataclasses.field(default=0, kw_only=True)

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        Event.registry[_snake(cls.__name__)] = cls

    @property
    def type(self) -> str:
        return _snake(type(self).__name__)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **dataclasses.asdict(self)}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class ContactAdded(Event):
    """A contact was added (an invite answered, or a request accepted)."""

    aid: bytes
    name: str


@dataclass(frozen=True)
class RequestReceived(Event):
    """A stranger asked to become a contact; it waits in Requests."""

    aid: bytes
    name: str
    note: str
    same_name_as: bytes | None = None  # an existing contact's aid with the same name


@dataclass(frozen=True)
class MessageReceived(Event):
    """A message arrived in a conversation."""

    mid: bytes
    conversation: bytes
    author: bytes
    body: str
    ts: int
    reply: bytes | None = None
    verified: bool = False
    """Whether the author's safety number was verified on this device when it arrived."""


@dataclass(frozen=True)
class MessageEdited(Event):
    """The author changed a message's text."""

    mid: bytes
    conversation: bytes
    body: str


@dataclass(frozen=True)
class MessageDeleted(Event):
    """The author deleted a message."""

    mid: bytes
    conversation: bytes


@dataclass(frozen=True)
class ReactionChanged(Event):
    """Someone reacted to a message (an empty emoji takes the reaction back)."""

    mid: bytes
    conversation: bytes
    author: bytes
    emoji: str


@dataclass(frozen=True)
class MessageStatus(Event):
    """An outgoing message moved on: ``sent``, ``delivered`` or ``read``."""

    mid: bytes
    status: str


@dataclass(frozen=True)
class Typing(Event):
    """A contact started or stopped typing. Transient: never stored, never replayed."""

    conversation: bytes
    author: bytes
    on: bool


EventRow = tuple[str, bytes, int]
_INSERT = "INSERT INTO events (type, body, ts) VALUES (?, ?, ?)"


def row(event: Event, *, now: int) -> EventRow:
    """``event`` as the row that stores it."""
    # Events are flat: a shallow read of the fields (asdict's deep copy cost more than the
    # insert itself), by names kept per class.
    kind, names = _shape(type(event))
    return kind, pack({name: getattr(event, name) for name in names}), now


def record(store: Store, event: Event, *, now: int) -> int:
    """Store ``event`` (inside the caller's transaction); returns its cursor."""
    return store.execute(_INSERT, row(event, now=now))


def record_rows(store: Store, rows: list[EventRow]) -> None:
    """Store events already made rows, in order, in one statement (a batch's events)."""
    if rows:
        store.executemany(_INSERT, rows)


_SHAPES: dict[type, tuple[str, tuple[str, ...]]] = {}


def _shape(cls: type[Event]) -> tuple[str, tuple[str, ...]]:
    """An event class's stored type name and field names, worked out once per class."""
    found = _SHAPES.get(cls)
    if found is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name != "cursor")
        found = _SHAPES[cls] = (_snake(cls.__name__), names)
    return found


def since(store: Store, cursor: int, limit: int = 1000) -> list[Event]:
    """Stored events after ``cursor``, oldest first."""
    rows = store.all(
        "SELECT cursor, type, body FROM events WHERE cursor > ? ORDER BY cursor LIMIT ?",
        (cursor, limit),
    )
    out = []
    for number, kind, body in rows:
        cls = Event.registry.get(str(kind))
        if cls is not None:
            out.append(cls(**unpack_map(bytes(body), MAX_EVENT_BYTES), cursor=int(number)))
    return out


@dataclass(frozen=True)
class DevicesChanged(Event):
    """An account (a contact's, or this one) added or removed devices: a notice in its chat."""

    aid: bytes
    added: tuple[str, ...] | list[str] = ()
    removed: tuple[str, ...] | list[str] = ()


@dataclass(frozen=True)
class DeviceUnlinked(Event):
    """This device was removed from its account; it sends nothing more."""

    aid: bytes


@dataclass(frozen=True)
class ManifestForked(Event):
    """An account showed two different manifests of one version; the first is kept."""

    aid: bytes
    ver: int


@dataclass(frozen=True)
class ContactRenamed(Event):
    """A contact's account took another name (shown beside the old one, so that a contact
    cannot quietly take a name that reads like another's)."""

    aid: bytes
    old: str
    new: str
