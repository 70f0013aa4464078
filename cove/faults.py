"""Named fault points for crash tests (issue 4: kill a peer at exact moments).

``COVE_FAULT=<name>:<n>`` in the environment makes the process kill itself
with SIGKILL the n-th time it reaches point ``<name>`` (n defaults to 1).
Unset, a point costs one dictionary lookup. The points:

``after_send_commit``    the sender committed a message and its envelopes, before sending
``after_decrypt``        the receiver decrypted an envelope, before committing it
``after_receive_commit`` the receiver committed, before acking
"""

from __future__ import annotations

import os
import signal

_ARMED: dict[str, int] = {}
_spec = os.environ.get("COVE_FAULT", "")
if _spec:
    _name, _, _count = _spec.partition(":")
    _ARMED[_name] = int(_count or "1")


def point(name: str) -> None:
    """Die here if this point is armed and its count is reached."""
    if name in _ARMED:
        _ARMED[name] -= 1
        if _ARMED[name] <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
