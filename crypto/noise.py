"""Noise Protocol Framework (revision 34) for Cove's links (DESIGN §4, §9).

Theory of operation
-------------------
A session has two phases, each its own type (STYLE rule 7):

1. :class:`Handshake` (Noise §5.3 HandshakeState) runs one side of a
   pattern. The caller moves bytes: ``write_message(payload)`` when
   ``needs_write``, ``read_message(message)`` when ``needs_read``. Inside, a
   ``SymmetricState`` (§5.2) hashes every public key and ciphertext into
   ``h`` and every DH result and PSK into the chaining key ``ck``; from the
   first DH (or, in PSK handshakes, the first ``e``, §9.2) payloads and
   static keys are encrypted under a key derived from ``ck`` with ``h`` as
   associated data, so each message authenticates the whole transcript so
   far. Any failure ends the handshake for good.
2. After the last message, ``into_transport()`` runs Split() (§5.2) and
   returns a :class:`NoiseTransport` with one ChaChaPoly key per direction;
   the handshake object is emptied and refuses further use.

Cove uses ``Noise_XX_25519_ChaChaPoly_BLAKE2b`` for links (§4) and
``Noise_XXpsk0_25519_ChaChaPoly_BLAKE2b`` for device linking (§9); the
engine also runs IK and any ``pskN`` modifiers on XX and IK, with BLAKE2b or
SHA256, which the known-answer vectors exercise. Everything is sans-I/O:
no sockets, no clock; randomness comes from the ``rng`` parameter.

The code is cut by concept: ``noise_state`` (CipherState, SymmetricState,
hash suites and limits), ``noise_patterns`` (names and pattern tables),
``noise_handshake`` and ``noise_transport``. Import from here.
"""

from __future__ import annotations

from crypto.noise_handshake import Handshake
from crypto.noise_patterns import PATTERNS, NoiseProtocol, noise_protocol
from crypto.noise_state import (
    DH_LEN,
    HASH_SUITES,
    KEY_LEN,
    MAX_MESSAGE_LEN,
    MAX_NONCE,
    MAX_PLAINTEXT_LEN,
    TAG_LEN,
    CipherState,
    HashSuite,
    NoiseDecryptionError,
    SymmetricState,
)
from crypto.noise_transport import NoiseTransport

__all__ = [
    "DH_LEN",
    "HASH_SUITES",
    "KEY_LEN",
    "MAX_MESSAGE_LEN",
    "MAX_NONCE",
    "MAX_PLAINTEXT_LEN",
    "PATTERNS",
    "TAG_LEN",
    "CipherState",
    "Handshake",
    "HashSuite",
    "NoiseDecryptionError",
    "NoiseProtocol",
    "NoiseTransport",
    "SymmetricState",
    "noise_protocol",
]
