"""A headless link-layer peer for integration tests, run as its own process.

    python -m tests.integration.transport_peer NAME --peers A,B [--port P]

Keys derive from NAME (so a restarted peer is the same device), every named
peer is a known contact, and it listens on the chosen interfaces
(``COVE_INTERFACES``) with discovery on. It prints one JSON object per line
(``ready``, ``up``, ``down``, ``seen``, ``gone``, ``msg``) and reads commands
on stdin: ``send NAME TEXT``. With ``--no-dial`` it accepts links but never
dials, so a test can tell who redialled whom.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from crypto.identity import AccountKeys, DeviceCertificate, DeviceKeys, id_to_text
from tests.golden import fixed_rng
from transport.discovery_records import PeerGone, PeerSeen
from transport.interfaces import chosen_interfaces
from transport.node import NodeEvent, TransportNode
from transport.registry import LinkDown, LinkMessageReceived, LinkUp
from transport.session import Admission, Hello, Verdict


def device(name: str) -> tuple[AccountKeys, DeviceKeys, DeviceCertificate]:
    account = AccountKeys.generate(fixed_rng(f"{name} account"))
    keys = DeviceKeys.generate(fixed_rng(f"{name} device"))
    cert = DeviceCertificate.issue(account, dsk=keys.dsk, ddk=keys.ddk, name=name, ts=0)
    return account, keys, cert


def say(**fields: object) -> None:
    print(json.dumps({"t": time.time(), **fields}), flush=True)


async def main(name: str, peers: list[str], port: int, dial: bool) -> None:
    _, keys, cert = device(name)
    others = {p: device(p) for p in peers}
    names = {dev[1].ddk: p for p, dev in others.items()}
    accounts = {dev[0].aik for dev in others.values()}
    dids = {id_to_text(dev[1].did): p for p, dev in others.items()}

    def policy(c: DeviceCertificate, mver: int) -> Verdict:
        return Verdict(Admission.CONTACT if c.acct in accounts else Admission.STRANGER)

    def on_event(event: NodeEvent) -> None:
        if isinstance(event, LinkUp):
            say(ev="up", peer=names.get(event.ddk, "?"), initiator=event.link.session.initiator)
        elif isinstance(event, LinkDown):
            say(ev="down", peer=names.get(event.ddk, "?"), reason=event.reason)
        elif isinstance(event, LinkMessageReceived) and event.message.t == "env":
            say(ev="msg", peer=names.get(event.ddk, "?"), text=event.message["e"].decode())
        elif isinstance(event, PeerSeen):
            say(ev="seen", peer=dids.get(event.did_text, "?"), addresses=event.addresses)
        elif isinstance(event, PeerGone):
            say(ev="gone", peer=dids.get(event.did_text, "?"))

    node = TransportNode(keys=keys, hello=lambda: Hello(cert, 1), policy=policy,
                         on_event=on_event, interfaces=chosen_interfaces(), port=port)
    for dev in others.values() if dial else ():
        node.know(dev[1].ddk)
    await node.start()
    say(ev="ready", port=node.port)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode().strip():
            cmd, peer, text = [*line.split(" ", 2), "", ""][:3]
            if cmd == "send" and peer in others:
                sent = node.registry.send(others[peer][1].ddk, "env", e=text.encode())
                say(ev="sent" if sent else "unsent", peer=peer)
    finally:
        await node.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--peers", default="")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-dial", action="store_true", help="accept links, never dial")
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    asyncio.run(main(args.name, peers, args.port, not args.no_dial))
