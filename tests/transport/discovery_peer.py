"""A Discovery in its own process, for the multi-process tests in test_discovery.py.

Run inside the test's loopback-only namespace as
``python -m tests.transport.discovery_peer --did HEX --port N [--ttl S]``.
It prints one JSON object per line: ``{"ready": instance}`` once announced,
then ``{"seen": ...}`` / ``{"gone": ...}`` for every event. Commands on stdin,
one per line: ``discoverable NAME AID_HEX SECONDS`` and ``close`` (clean
close, goodbyes, exit 0); end of input also closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from transport.discovery import Discovery, PeerSeen
from transport.interfaces import chosen_interfaces


def _print(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _main(args: argparse.Namespace) -> None:
    addresses = chosen_interfaces().addresses
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    discovery = Discovery(
        addresses,
        did=bytes.fromhex(args.did),
        port=args.port,
        record_ttl=args.ttl,
        liveness_interval=args.liveness,
        liveness_timeout=args.liveness_timeout,
    )
    async with discovery:

        async def report() -> None:
            async for event in discovery:
                if isinstance(event, PeerSeen):
                    _print({"seen": event.did_text, "instance": event.instance,
                            "addresses": event.addresses, "name": event.name, "aid": event.aid})
                else:
                    _print({"gone": event.did_text, "instance": event.instance})

        reporter = loop.create_task(report())
        _print({"ready": discovery.instance})
        while line := (await reader.readline()).decode().split():
            if line[0] == "discoverable":
                await discovery.set_discoverable(line[1], bytes.fromhex(line[2]), float(line[3]))
                _print({"discoverable": True})
            elif line[0] == "close":
                break
    await reporter
    _print({"closed": True})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--did", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttl", type=int, default=120)
    parser.add_argument("--liveness", type=float, default=0.25)
    parser.add_argument("--liveness-timeout", type=float, default=1.0)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
