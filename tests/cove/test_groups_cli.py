"""Groups through ``cove rpc`` and the CLI, as processes (DESIGN §10, §13)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cove.procs import Rpc, cove


def poll(get: Callable[[], Any], until: Callable[[Any], bool], timeout: float = 15) -> Any:
    deadline = time.time() + timeout
    while True:
        value = get()
        if until(value) or time.time() > deadline:
            return value
        time.sleep(0.05)


@pytest.mark.timeout(120)
def test_group_create_send_history_and_a_split_by_cli_and_rpc(tmp_path: Path) -> None:
    for name in ("Ann", "Bob", "Cy"):
        assert cove(tmp_path / name, "init", name).returncode == 0
    ann, bob, cy = (Rpc(tmp_path / n) for n in ("Ann", "Bob", "Cy"))  # the homes are held
    try:
        for other in (bob, cy):
            other.call("accept_invite", code=ann.call("invite")["code"])
        made = cove(tmp_path / "Ann", "group", "create", "crew", "Bob", "Cy")
        assert made.returncode == 0 and made.stdout.startswith("Created #crew ("), made.stderr
        gid = ann.call("groups")[0]["gid"]
        assert made.stdout.strip() == f"Created #crew ({gid})."
        found = poll(lambda: bob.call("groups"), lambda g: len(g) == 1)
        assert found[0]["gid"] == gid and found[0]["active"]
        assert [(m["name"], m["admin"]) for m in found[0]["members"]] == [
            ("Ann", True), ("Bob", False), ("Cy", False)]
        sent = cove(tmp_path / "Ann", "send", "#crew", "hello crew")
        assert sent.returncode == 0 and sent.stdout.strip() == "Sent to #crew.", sent.stderr
        shown = poll(lambda: cove(tmp_path / "Bob", "history", "#CREW").stdout,
                     lambda out: "hello" in out)
        assert shown.strip() == "Ann: hello crew"
        assert cove(tmp_path / "Ann", "history", gid[:6]).stdout.strip() == "me: hello crew"
        listed = cove(tmp_path / "Ann", "groups").stdout.strip()
        assert listed == f"{gid}  #crew  3 members"
        # Errors are one sentence each.
        refused = cove(tmp_path / "Bob", "group", "rename", "#crew", "mine")
        assert refused.returncode == 1 and refused.stderr.splitlines() == [
            "cove: Only an admin of the group can do that; ask one of its admins."]
        unknown = cove(tmp_path / "Ann", "send", "#nope", "x")
        assert unknown.returncode == 1 and unknown.stderr.splitlines() == [
            "cove: No group matches '#nope'; 'cove groups' lists them."]
        renamed = cove(tmp_path / "Ann", "group", "rename", "#crew", "dinner club")
        assert renamed.stdout.strip() == "Renamed #crew to #dinner club."
        assert poll(lambda: cy.call("group", group=gid)["name"],
                    lambda n: n == "dinner club") == "dinner club"
        # A bill of 84.50 between Ann (who paid) and Bob, by RPC: integer cents only.
        bob_aid = ann.call("contacts")[0]["aid"]
        ann.line(json.dumps({"jsonrpc": "2.0", "id": 90, "method": "send_split", "params": {
            "group": gid, "total_cents": 84.5, "members": [bob_aid]}}))
        assert ann.read()["error"]["code"] == -32602
        mid = ann.call("send_split", group=gid, total_cents=8450, members=[bob_aid],
                       note="dinner")["mid"]
        split = poll(lambda: _split(bob, mid), lambda s: s is not None)
        assert split["total_cents"] == 8450 and [s["cents"] for s in split["shares"]] == [
            4225, 4225]
        bob_acct = next(s["acct"] for s in split["shares"] if s["name"] == "Bob")
        assert split["owing"] == [bob_acct]
        assert bob.call("mark_paid", group=gid, split=mid) == {"paid": True}
        assert poll(lambda: ann.call("split", mid=mid)["owing"], lambda o: o == []) == []
        history = cove(tmp_path / "Ann", "history", "#dinner club").stdout.splitlines()
        assert history == ["me: hello crew", "me: split 84.50 (2 of 2 paid) dinner"]
        shown = poll(lambda: cove(tmp_path / "Cy", "history", "#dinner club").stdout,
                     lambda out: "split" in out)
        last = shown.splitlines()[-1]  # Cy hears Bob's payment only if they can link
        assert last.startswith("Ann: split 84.50 (") and last.endswith(" of 2 paid) dinner")
        # A file into the group from the command line: every member is offered it.
        menu = tmp_path / "menu.txt"
        menu.write_text("pizza, pasta, tiramisu\n")
        offered = cove(tmp_path / "Ann", "send-file", "#dinner club", str(menu))
        assert offered.returncode == 0, offered.stderr
        assert offered.stdout.strip().startswith("Offered menu.txt (") and \
            "to #dinner club; the running Cove serves it." in offered.stdout
        assert poll(lambda: [t["name"] for t in bob.call("transfers")],
                    lambda names: names == ["menu.txt"]) == ["menu.txt"]
        left = cove(tmp_path / "Cy", "group", "leave", "#dinner club")
        assert left.returncode == 0 and left.stdout.strip() == "Left #dinner club."
        assert poll(lambda: len(ann.call("group", group=gid)["members"]), lambda n: n == 2) == 2
    finally:
        for proc in (ann, bob, cy):
            proc.close()


def _split(rpc: Rpc, mid: str) -> dict[str, Any] | None:
    try:
        return rpc.call("split", mid=mid)  # type: ignore[no-any-return]
    except AssertionError:  # not arrived yet: "There is no such split."
        return None


def test_conversation_resolution_rule() -> None:
    from cove.cli import resolve_conversation
    from cove.peer import PeerError
    from crypto.identity import id_to_text

    bob = {"aid": id_to_text(b"\x01" * 20), "name": "Bob", "verified": False}
    crew = {"gid": id_to_text(b"\x01" * 16), "name": "Crew", "members": [], "active": True}
    bob_club = {"gid": id_to_text(b"\x02" * 16), "name": "Bob", "members": [], "active": True}
    both = ([bob], [crew, bob_club])
    assert resolve_conversation(*both, "#crew") == (None, crew)
    assert resolve_conversation(*both, "bob") == (bob, None)  # '#Bob' names the group
    assert resolve_conversation(*both, "#Bob") == (None, bob_club)
    assert resolve_conversation(*both, str(crew["gid"])) == (None, crew)
    with pytest.raises(PeerError, match="more than one"):
        resolve_conversation(*both, "aeaq")  # a prefix of Bob's id and Crew's
    with pytest.raises(PeerError, match="No group matches"):
        resolve_conversation(*both, "#nope")
