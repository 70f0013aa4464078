"""Safety numbers and the QR payload (DESIGN §3), against an independent hashlib build."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto.errors import LocalProtocolError
from crypto.safety import (
    MAX_QR_PAYLOAD_CHARS,
    SAFETY_ITERATIONS,
    QrComparison,
    compare_safety_qr,
    fingerprint,
    format_safety_number,
    safety_groups,
    safety_number,
    safety_qr_payload,
)
from tests.crypto.test_identity import AIK_PUB, MALLORY

ANN_AIK = AIK_PUB  # RFC 8032 TEST 1 public key
BOB_AIK = MALLORY.aik  # the Ed25519 key of seed 00 01 .. 1f
CAROL_AIK = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")

ANN_FP = "185769429918650083699520025975"
BOB_FP = "999695488963803096917501770037"
GOLDEN = ANN_FP + BOB_FP


def reference_fingerprint(aik: bytes, iterations: int = 5200) -> str:
    """DESIGN §3 spelled out with hashlib only, independent of crypto/."""
    aid = hashlib.blake2b(aik, digest_size=20).digest()
    digest = hashlib.sha512(b"\x00\x00" + aik + aid).digest()
    for _ in range(iterations):
        digest = hashlib.sha512(digest + aik).digest()
    out = ""
    for i in range(6):
        out += str(int.from_bytes(digest[5 * i : 5 * i + 5], "big") % 100000).zfill(5)
    return out


def test_fingerprints_match_the_independent_build_and_the_pinned_values() -> None:
    assert SAFETY_ITERATIONS == 5200
    assert fingerprint(ANN_AIK) == reference_fingerprint(ANN_AIK) == ANN_FP
    assert fingerprint(BOB_AIK) == reference_fingerprint(BOB_AIK) == BOB_FP
    # The iteration count matters: one fewer round gives other digits.
    assert reference_fingerprint(ANN_AIK, 5199) != ANN_FP
    # A chunk below 10000 keeps its leading zero ("08369").
    assert ANN_FP[15:20] == "08369"


def test_safety_number_is_sorted_and_symmetric() -> None:
    assert safety_number(ANN_AIK, BOB_AIK) == GOLDEN
    assert safety_number(BOB_AIK, ANN_AIK) == GOLDEN
    assert len(GOLDEN) == 60 and GOLDEN.isdigit()
    assert safety_number(ANN_AIK, CAROL_AIK) != GOLDEN
    assert safety_number(ANN_AIK, ANN_AIK) == ANN_FP * 2


def test_shown_as_twelve_groups_of_five() -> None:
    groups = safety_groups(GOLDEN)
    assert len(groups) == 12 and all(len(g) == 5 for g in groups)
    assert "".join(groups) == GOLDEN
    assert format_safety_number(GOLDEN) == (
        "18576 94299 18650 08369\n95200 25975 99969 54889\n63803 09691 75017 70037"
    )
    assert format_safety_number(GOLDEN, per_line=6).count("\n") == 1
    for bad in ("1" * 59, "1" * 61, "x" * 60, "١" * 60):
        with pytest.raises(LocalProtocolError):
            safety_groups(bad)


def test_fingerprint_needs_a_32_byte_key() -> None:
    with pytest.raises(LocalProtocolError):
        fingerprint(ANN_AIK[:31])


def test_qr_payload_is_scheme_version_and_digits() -> None:
    payload = safety_qr_payload(ANN_AIK, BOB_AIK)
    assert payload == "COVE-SN1:" + GOLDEN
    assert payload == safety_qr_payload(BOB_AIK, ANN_AIK)
    # QR alphanumeric mode holds only 0-9, A-Z, space and $%*+-./:
    assert set(payload) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


def test_scanning_the_other_screen_matches() -> None:
    shown_by_bob = safety_qr_payload(BOB_AIK, ANN_AIK)
    assert compare_safety_qr(shown_by_bob, ANN_AIK, BOB_AIK) is QrComparison.MATCH
    assert compare_safety_qr(shown_by_bob.encode(), ANN_AIK, BOB_AIK) is QrComparison.MATCH
    assert compare_safety_qr(shown_by_bob + "\n", ANN_AIK, BOB_AIK) is QrComparison.MATCH


def test_a_code_for_other_keys_does_not_match() -> None:
    shown_by_carol = safety_qr_payload(CAROL_AIK, ANN_AIK)
    assert compare_safety_qr(shown_by_carol, ANN_AIK, BOB_AIK) is QrComparison.MISMATCH


@pytest.mark.parametrize(
    ("scanned", "verdict"),
    [
        ("COVE-SN2:" + GOLDEN, QrComparison.OTHER_VERSION),
        ("COVE-SN9999:" + "1" * 12, QrComparison.OTHER_VERSION),
        ("COVE-SN1:" + GOLDEN[:-1], QrComparison.MALFORMED),
        ("COVE-SN1:" + GOLDEN + "0", QrComparison.MALFORMED),
        ("COVE-SN1:" + GOLDEN[:-1] + "x", QrComparison.MALFORMED),
        ("COVE-SN1:" + "١" * 60, QrComparison.MALFORMED),
        ("COVE-SN:" + GOLDEN, QrComparison.MALFORMED),
        ("COVE-SNx:" + GOLDEN, QrComparison.MALFORMED),
        ("SIGNAL1:" + GOLDEN, QrComparison.MALFORMED),
        (GOLDEN, QrComparison.MALFORMED),
        ("", QrComparison.MALFORMED),
        (b"\xff\xfe", QrComparison.MALFORMED),
        ("COVE-SN1:" + GOLDEN + " " * MAX_QR_PAYLOAD_CHARS, QrComparison.MALFORMED),
    ],
)
def test_unreadable_or_foreign_codes(scanned: str | bytes, verdict: QrComparison) -> None:
    assert compare_safety_qr(scanned, ANN_AIK, BOB_AIK) is verdict


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_compare_never_raises_and_matches_only_the_payload(scanned: str | bytes) -> None:
    result = compare_safety_qr(scanned, ANN_AIK, BOB_AIK)
    assert isinstance(result, QrComparison)
    text = scanned.decode("latin-1") if isinstance(scanned, bytes) else scanned
    if result is QrComparison.MATCH:
        assert text.strip(" \t\r\n") == "COVE-SN1:" + GOLDEN
