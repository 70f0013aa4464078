"""The quick switcher (Ctrl+K): Textual's command palette, searching chats by name.

Names are drawn as plain ``Content``: the palette's own highlighter reads
its input as markup, which a peer's name must never be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider

from tui import plain

if TYPE_CHECKING:
    from tui.screens.main import MainScreen


def chats_provider(chats: list[tuple[str, bytes]],
                   open_chat: Callable[[bytes], None]) -> type[Provider]:
    """A provider class over ``(name, aid)`` pairs (the palette makes its own instance)."""

    class Chats(Provider):
        async def discover(self) -> Hits:
            for name, aid in chats:
                shown = plain.name_str(name)
                yield DiscoveryHit(plain.name(name), _opener(open_chat, aid), text=shown)

        async def search(self, query: str) -> Hits:
            matcher = self.matcher(query)
            for name, aid in chats:
                shown = plain.name_str(name)
                score = matcher.match(shown)
                if score > 0:
                    yield Hit(score, plain.name(name), _opener(open_chat, aid), text=shown)

    return Chats


def _opener(open_chat: Callable[[bytes], None], aid: bytes) -> Callable[[], None]:
    return lambda: open_chat(aid)


def open_switcher(screen: MainScreen) -> None:
    def go(aid: bytes) -> None:
        screen.open_chat(aid)
        from tui.widgets.sidebar import Sidebar

        screen.query_one(Sidebar).move_to(aid)

    chats = [(c.name, c.aid) for c in screen.roster.chats]
    screen.app.push_screen(CommandPalette(providers=[chats_provider(chats, go)],
                                          placeholder="Jump to a chat…"))
