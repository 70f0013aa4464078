"""What each ``/command`` typed in the composer does on the main screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crypto.errors import CoveError
from tui.slash_commands import SlashCommand

if TYPE_CHECKING:
    from tui.chat_lines import ChatMessage
    from tui.screens.main import MainScreen


def _target(screen: MainScreen, *, own: bool) -> ChatMessage | None:
    """The selected message, else the last one of the right author."""
    log = screen.log_view
    if log.selected is not None and (log.selected.outgoing or not own) \
            and not log.selected.notice:
        return log.selected
    return next((m for m in reversed(log.messages)
                 if m.outgoing == own and not m.deleted and not m.notice), None)


async def run_command(screen: MainScreen, command: SlashCommand, arg: str) -> None:
    app = screen.app
    name = command.name
    if command.takes and not command.takes.startswith("[") and not arg:
        app.notify(f"/{name} takes {command.takes}: {command.help}.", severity="warning")
        return
    simple = {"info": "contact_info", "invite": "invite", "search": "search",
              "settings": "settings", "devices": "devices", "lock": "lock",
              "members": "contact_info", "transfers": "transfers"}
    if name in simple and not (name == "search" and arg):
        await (screen.run_action(simple[name]) if name != "lock" else app.run_action("lock"))
        return
    if name == "help":
        await app.run_action("help")
    elif name == "quit":
        await app.action_quit()
    elif name in ("mute", "unmute"):
        chat = screen.chat()
        if chat is not None and chat.muted != (name == "mute"):
            screen.set_muted(chat, name == "mute")
    elif name == "search":
        from tui.screens.search import SearchScreen

        app.push_screen(SearchScreen(screen.session, arg), screen.jump)
    elif name in ("add", "block", "reply", "edit", "delete", "react", "split", "paid", "send",
                  "accept", "cancel", "group") and screen.session.refuse_write(app.notify):
        return
    elif name in ("split", "paid", "send", "accept", "cancel"):
        from tui import split_and_file as SF

        if name == "split":
            await SF.post_split(screen, arg)
        elif name == "paid":
            await SF.mark_paid(screen)
        elif name == "send":
            SF.send_file(screen, arg)
        elif name == "accept":
            await SF.accept(screen)
        else:
            await SF.cancel(screen)
    elif name == "group":
        screen.new_group(arg)
    elif name == "add":
        from tui.screens.invite import InviteScreen

        app.push_screen(InviteScreen(screen.session, code=arg), screen._reloaded)
    elif name == "block":
        from tui.screens.confirm import ConfirmScreen

        chat = screen.chat()
        if chat is not None and chat.group:
            app.notify("A group cannot be blocked; F2 lets you leave it.", severity="warning")
        elif chat is not None:
            def done(yes: bool | None) -> None:
                if yes:
                    try:
                        screen.peer.block(chat.aid)
                    except CoveError as exc:
                        app.notify(" ".join(str(exc).split()), severity="error", markup=False)
                        return
                    screen.open_chat(None)
                    screen.reload()

            app.push_screen(ConfirmScreen(f"Block {chat.name}? They can no longer reach you.",
                                          "Block"), done)
    else:
        await _on_message(screen, name, arg)


async def _on_message(screen: MainScreen, name: str, arg: str) -> None:
    pane = screen.pane
    target = _target(screen, own=name in ("edit", "delete"))
    if target is None:
        screen.app.notify("There is no message for that here.", severity="warning")
        return
    if name == "reply":
        pane.start_reply(target)
        if await pane.send_text(arg):
            screen.reload()
    elif name == "edit":
        pane.start_edit(target)
        pane.composer.text = ""
        await pane.send_text(arg)
    elif name == "delete":
        pane.delete(target)
    elif name == "react":
        await pane.react(target, arg.split()[0])
