"""The composer's ``/commands``: names, what they take, what they do, and completion."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SlashCommand:
    name: str
    takes: str
    help: str


COMMANDS: tuple[SlashCommand, ...] = (
    SlashCommand("reply", "TEXT", "reply to the selected or the last received message"),
    SlashCommand("edit", "TEXT", "change the text of your last message"),
    SlashCommand("delete", "", "delete your selected or last message"),
    SlashCommand("react", "EMOJI", "react to the selected or last received message"),
    SlashCommand("split", "N @WHO", "split a bill with you: /split 84.50 @ann @bob dinner"),
    SlashCommand("paid", "", "mark your share of the selected or latest split paid"),
    SlashCommand("send", "PATH", "send a file (Tab completes the path)"),
    SlashCommand("accept", "", "fetch and save the selected or latest file offered"),
    SlashCommand("cancel", "", "cancel the selected or latest file transfer"),
    SlashCommand("group", "[NAME]", "create a group chat and pick its members"),
    SlashCommand("members", "", "a group's members and what admins can change"),
    SlashCommand("transfers", "", "every file sent and received, with progress"),
    SlashCommand("mute", "", "no bell or toast for this chat"),
    SlashCommand("unmute", "", "notify again for this chat"),
    SlashCommand("info", "", "contact info: safety number and QR code"),
    SlashCommand("invite", "", "show your invite code"),
    SlashCommand("add", "CODE", "add a contact from their invite code"),
    SlashCommand("search", "WORDS", "search every chat"),
    SlashCommand("block", "", "block this contact"),
    SlashCommand("settings", "", "open the settings"),
    SlashCommand("devices", "", "your devices: link a new one, unlink one"),
    SlashCommand("help", "", "every key and command"),
    SlashCommand("lock", "", "lock the app now"),
    SlashCommand("quit", "", "leave Cove"),
)
BY_NAME = {c.name: c for c in COMMANDS}


def matches(text: str) -> list[SlashCommand]:
    """Commands that the text typed so far could become (``/re`` -> reply, react)."""
    if not text.startswith("/") or " " in text or "\n" in text:
        return []
    prefix = text[1:].lower()
    return [c for c in COMMANDS if c.name.startswith(prefix)]


def complete(text: str) -> str | None:
    """The text with the command name completed as far as every match agrees."""
    found = matches(text)
    if not found:
        return None
    if len(found) == 1:
        return f"/{found[0].name} " if found[0].takes else f"/{found[0].name}"
    names = [c.name for c in found]
    common = names[0]
    for other in names[1:]:
        while not other.startswith(common):
            common = common[:-1]
    return "/" + common


def parse(text: str) -> tuple[SlashCommand, str] | None:
    """``(command, argument)`` for a line that is a command; None for a plain message.

    A line starting with ``//`` is a message that begins with one slash.
    """
    if not text.startswith("/") or text.startswith("//"):
        return None
    head, _, rest = text[1:].partition(" ")
    command = BY_NAME.get(head.lower())
    return None if command is None else (command, rest.strip())
