"""``cove rpc`` and the CLI driven as processes, as a bot or a user would (DESIGN §13)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cove.home import home_is_held
from tests.cove.procs import Rpc, cove


@pytest.mark.timeout(120)
def test_rpc_create_invite_add_send_receive_and_survive_junk(tmp_path: Path) -> None:
    assert cove(tmp_path / "ann", "init", "Ann").returncode == 0
    assert cove(tmp_path / "bob", "init", "Bob").returncode == 0
    ann, bob = Rpc(tmp_path / "ann"), Rpc(tmp_path / "bob")
    try:
        me = ann.call("whoami")
        assert me["name"] == "Ann" and len(me["aid"]) == 32
        code = ann.call("invite")["code"]
        added = bob.call("accept_invite", code=code, note="hello from Bob")
        assert added["aid"] == me["aid"]
        ann.call("subscribe", since=0)
        bob.call("send", to=me["aid"], text="hi Ann \x1b[31mred\x07")
        deadline = time.time() + 15
        got = None
        while got is None and time.time() < deadline:
            msg = ann.notes.pop(0) if ann.notes else ann.read()
            if msg.get("method") == "event" and msg["params"]["type"] == "message_received":
                got = msg["params"]
        assert got is not None and got["body"] == "hi Ann \x1b[31mred\x07"  # as sent, documented
        junk = ["", "{", "[]", "42", '{"jsonrpc": "2.0"}', '{"jsonrpc":"2.0","id":1,"method":"x"}',
                '{"jsonrpc":"2.0","id":2,"method":"send","params":[1]}',
                '{"jsonrpc":"2.0","id":3,"method":"send","params":{"to":"!!","text":"x"}}',
                "\xff\xfe", "null"]
        errors = 0
        for i in range(1000):
            line = junk[i % len(junk)]
            if not line:
                continue
            ann.line(line)
            while True:
                msg = ann.read()
                if "error" in msg:
                    errors += 1
                    break
        assert errors == 900
        bob_aid = ann.call("contacts")[0]["aid"]
        for bad in ('"x"', "[1]", str(2**70), "-1"):
            ann.line('{"jsonrpc":"2.0","id":77,"method":"history","params":'
                     f'{{"conversation":"{bob_aid}","limit":{bad}}}}}')
            error = ann.read()["error"]
            assert error["code"] == -32602
            assert error["message"] == "Limit must be 0 to 10000."  # what is wrong, not "a param"
        ann.line(f'{{"jsonrpc":"2.0","id":78,"method":"subscribe","params":{{"since":{2**70}}}}}')
        assert ann.read()["error"]["code"] == -32602
        assert ann.call("whoami")["aid"] == me["aid"]  # still up and working
        contacts = ann.call("contacts")
        assert [c["name"] for c in contacts] == ["Bob"]
        first = ann.call("history", conversation=bob_aid, limit=1, after="")
        assert [h["body"] for h in first] == ["hi Ann \x1b[31mred\x07"]
        assert ann.call("history", conversation=bob_aid, after=first[0]["mid"]) == []
        assert ann.call("mute", conversation=bob_aid) == {"muted": True}
        assert ann.call("settings") == {"read_receipts": True, "typing": True, "trust": "tofu"}
        assert ann.call("set_setting", name="trust", value="verified-only")["trust"] == (
            "verified-only")
        assert ann.call("set_setting", name="typing", value=False)["typing"] is False
        for name, value in (("trust", "anyone"), ("typing", "no"), ("telepathy", True)):
            ann.line(json.dumps({"jsonrpc": "2.0", "id": 80, "method": "set_setting",
                                 "params": {"name": name, "value": value}}))
            assert "error" in ann.read()
    finally:
        ann.close()
        bob.close()


def test_cli_errors_are_one_sentence_and_nonzero(tmp_path: Path) -> None:
    result = cove(tmp_path / "x", "whoami")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    said = result.stderr.strip()
    assert said == "cove: This home has no account yet; create one with 'cove init NAME'."
    assert cove(tmp_path / "a", "init", "Ann").returncode == 0
    bad = cove(tmp_path / "a", "add", "cove:zzzz")
    assert bad.returncode == 1 and bad.stderr.strip().endswith("ask for a fresh one.")
    unknown = cove(tmp_path / "a", "send", "nobody", "hi")
    assert unknown.returncode == 1 and "No contact matches" in unknown.stderr


def test_contact_resolution_rule() -> None:
    from cove.cli import resolve_contact
    from cove.peer import PeerError
    from crypto.identity import id_to_text

    def c(n: int, name: str) -> dict[str, object]:
        return {"aid": id_to_text(bytes([n]) * 20), "name": name, "verified": False}

    ann, ann2, bob = c(1, "Ann"), c(2, "Ann"), c(3, "Bob")
    assert resolve_contact([ann, bob], str(bob["aid"])) is bob
    assert resolve_contact([ann, bob], "bob") is bob
    assert resolve_contact([ann, bob], str(bob["aid"])[:4]) is bob
    with pytest.raises(PeerError, match="more than one contact"):
        resolve_contact([ann, ann2, bob], "Ann")
    with pytest.raises(PeerError, match="No contact"):
        resolve_contact([ann, bob], str(bob["aid"])[:3])


def test_cli_commands_reach_the_process_that_holds_the_home(tmp_path: Path) -> None:
    assert cove(tmp_path / "ann", "init", "Ann").returncode == 0
    assert cove(tmp_path / "bob", "init", "Bob").returncode == 0
    ann, bob = Rpc(tmp_path / "ann"), Rpc(tmp_path / "bob")  # both homes are held
    try:
        code = ann.call("invite")["code"]
        added = cove(tmp_path / "bob", "add", code)  # through bob's control socket
        assert added.returncode == 0 and "Added Ann" in added.stdout, added.stderr
        sent = cove(tmp_path / "bob", "send", "ann", "sent while the home is held")
        assert sent.returncode == 0 and "Delivered to Ann." in sent.stdout, sent.stderr
        shown = cove(tmp_path / "ann", "history", "Bob")
        assert shown.stdout.strip() == "Bob: sent while the home is held"
        assert (tmp_path / "ann" / "control.sock").stat().st_mode & 0o777 == 0o600
    finally:
        ann.close()
        bob.close()
    assert not (tmp_path / "ann" / "control.sock").exists()  # removed on close


def test_a_wrong_passphrase_and_a_second_init_are_one_line_each(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.cove.procs import BASE, ROOT

    def run(passphrase: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cove", "--home", str(tmp_path / "p"), *BASE, *args],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "COVE_PASSPHRASE": passphrase},
        )

    assert run("right horse", "init", "Pat", "--passphrase").returncode == 0
    wrong = run("wrong horse", "whoami")
    assert wrong.returncode == 1
    assert wrong.stderr.splitlines() == [
        "cove: The passphrase (or key file) does not open this database; nothing was changed."
    ]
    again = run("right horse", "init", "Other")
    assert again.returncode == 1
    assert again.stderr.splitlines() == [
        "cove: This home already has an account (Pat); nothing was changed."
    ]
    assert "Pat" in run("right horse", "whoami").stdout


def test_cli_links_a_device_lists_and_unlinks_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.cove.procs import BASE, ROOT

    assert cove(tmp_path / "ann", "init", "Ann", "--device", "laptop").returncode == 0
    waiting = subprocess.Popen(
        [sys.executable, "-m", "cove", "--home", str(tmp_path / "phone"), *BASE, "link",
         "--device", "phone"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert waiting.stdout is not None
        shown = dict(waiting.stdout.readline().split(":", 1) for _ in range(3))
        code, address = shown["Code"].strip(), shown["Address"].strip()
        wrong = cove(tmp_path / "ann", "devices", "link", code, "--address", "127.0.0.1:1",
                     "--yes")
        assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1  # one sentence
        negative = cove(tmp_path / "ann", "devices", "link", code, "--address", address,
                        "--history-days", "-3", "--yes")  # refused before dialling: code kept
        assert negative.returncode == 1
        assert negative.stderr.startswith("cove: The history to send is a whole number of days")
        linked = cove(tmp_path / "ann", "devices", "link", code, "--address", address, "--yes")
        assert linked.returncode == 0, linked.stderr
        assert linked.stdout.strip() == "Linked 'phone'."
        out, err = waiting.communicate(timeout=30)
        assert waiting.returncode == 0, err
        assert "part of Ann's account" in out
    finally:
        if waiting.poll() is None:
            waiting.kill()
    listed = cove(tmp_path / "ann", "devices").stdout.splitlines()
    assert [line.split()[1] for line in listed] == ["laptop", "phone"]
    assert "(this device)" in listed[0] and "  online" in listed[0]
    assert "  offline, last seen 20" in listed[1] or \
        listed[1].endswith("  offline, not seen by this device yet")
    phone_id = listed[1].split()[0]
    renamed = cove(tmp_path / "ann", "devices", "rename", phone_id, "pocket")
    assert renamed.returncode == 0 and renamed.stdout.strip() == "Renamed to 'pocket'."
    assert cove(tmp_path / "ann", "devices").stdout.splitlines()[1].split()[1] == "pocket"
    refused = cove(tmp_path / "phone", "devices", "unlink", phone_id)
    assert refused.returncode == 1 and "Only the primary" in refused.stderr
    assert cove(tmp_path / "ann", "devices", "unlink", phone_id).returncode == 0
    assert [line.split()[1] for line in cove(tmp_path / "ann", "devices").stdout.splitlines()] \
        == ["laptop"]


def test_a_command_waits_for_a_cove_that_is_starting(tmp_path: Path) -> None:
    assert cove(tmp_path / "ann", "init", "Ann").returncode == 0
    ann = Rpc(tmp_path / "ann")  # starting: it holds the home before its socket listens
    try:
        deadline = time.monotonic() + 30  # a loaded machine may take a while to start it
        while not home_is_held(tmp_path / "ann") and time.monotonic() < deadline:
            time.sleep(0.01)
        started = cove(tmp_path / "ann", "whoami")
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("Ann")
    finally:
        ann.close()


def test_a_bad_device_id_is_one_sentence(tmp_path: Path) -> None:
    assert cove(tmp_path / "ann", "init", "Ann").returncode == 0
    done = cove(tmp_path / "ann", "devices", "unlink", "../etc")
    assert done.returncode == 1
    assert done.stderr.strip() == ("cove: That is not an id: ids are base32, as 'cove contacts' "
                                   "and 'cove devices' list them.")
