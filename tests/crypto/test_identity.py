"""Keys, ids and device certificates (DESIGN §2, §3), with known answers.

The fixed keys come from published vectors so that the derived public keys
are known answers: AIK and the DSKs are RFC 8032 §7.1 TEST 1-3 secret keys,
the DDKs are RFC 7748 §6.1 Alice's and Bob's private keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import primitives as P
from crypto.encoding import canonical, signed_bytes
from crypto.errors import BadSignature, LocalProtocolError, RemoteProtocolError
from crypto.identity import (
    AID_LEN,
    CERT_TAG,
    DID_LEN,
    MAX_CERT_BYTES,
    MAX_ID_TEXT_CHARS,
    MAX_NAME_BYTES,
    MAX_TS,
    AccountKeys,
    DeviceCertificate,
    DeviceKeys,
    IdTextError,
    account_id,
    device_id,
    id_from_text,
    id_to_text,
)

h = bytes.fromhex

# RFC 8032 §7.1 TEST 1 (secret, public).
AIK_SEED = h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
AIK_PUB = h("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
# RFC 8032 §7.1 TEST 2 and TEST 3.
DSK1_SEED = h("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
DSK1_PUB = h("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
DSK2_SEED = h("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7")
DSK2_PUB = h("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025")
# RFC 7748 §6.1 Alice and Bob.
DDK1_PRIV = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
DDK1_PUB = h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
DDK2_PRIV = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
DDK2_PUB = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")

TS = 1_700_000_000_000

ANN = AccountKeys(AIK_SEED)
LAPTOP = DeviceKeys(DSK1_SEED, DDK1_PRIV)
DESKTOP = DeviceKeys(DSK2_SEED, DDK2_PRIV)
MALLORY = AccountKeys(bytes(range(32)))

# The certificate for LAPTOP, name "laptop", ts TS, signed by ANN: pinned.
GOLDEN_CERT = h(
    "86"
    "a461636374c420d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    "a364646bc4208520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    "a364736bc4203d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
    "a46e616d65a66c6170746f70"
    "a3736967c440ef05c272db4fc2e0d7ba900e551ea67f37a4fa8728f332d4bedef8ca8731e836"
    "baf861827f8f4b17d79012cbeabfaa6fe41e205f3004886350907868c962ea0c"
    "a27473cf0000018bcfe56800"
)


def laptop_cert(name: str = "laptop", ts: int = TS) -> DeviceCertificate:
    return DeviceCertificate.issue(ANN, dsk=LAPTOP.dsk, ddk=LAPTOP.ddk, name=name, ts=ts)


def desktop_cert(name: str = "desktop", ts: int = TS + 1) -> DeviceCertificate:
    return DeviceCertificate.issue(ANN, dsk=DESKTOP.dsk, ddk=DESKTOP.ddk, name=name, ts=ts)


def cert_wire(fields: dict[str, object]) -> bytes:
    return canonical(fields)


# -- keys and ids ---------------------------------------------------------------


def test_keys_derive_the_rfc_public_keys() -> None:
    assert ANN.aik == AIK_PUB
    assert (LAPTOP.dsk, LAPTOP.ddk) == (DSK1_PUB, DDK1_PUB)
    assert (DESKTOP.dsk, DESKTOP.ddk) == (DSK2_PUB, DDK2_PUB)


def test_aid_is_blake2b_with_digest_size_20_not_a_truncation() -> None:
    expected = hashlib.blake2b(AIK_PUB, digest_size=20).digest()
    assert account_id(AIK_PUB) == ANN.aid == expected
    assert len(expected) == AID_LEN
    assert expected != hashlib.blake2b(AIK_PUB).digest()[:20]
    assert id_to_text(ANN.aid) == "dm2rpt226cwinohp5ccffeemix24pydz"


def test_did_is_blake2b_with_digest_size_10() -> None:
    expected = hashlib.blake2b(DDK1_PUB, digest_size=10).digest()
    assert device_id(DDK1_PUB) == LAPTOP.did == expected
    assert len(expected) == DID_LEN
    assert expected != hashlib.blake2b(DDK1_PUB).digest()[:10]
    assert id_to_text(LAPTOP.did) == "jbj5hg6xe4shkjeh"


def test_ids_refuse_wrong_key_lengths() -> None:
    with pytest.raises(LocalProtocolError):
        account_id(AIK_PUB[:31])
    with pytest.raises(LocalProtocolError):
        device_id(DDK1_PUB + b"\0")


@pytest.mark.parametrize(
    ("raw", "text"),
    # RFC 4648 §10 test vectors, lower-cased and without padding.
    [(b"f", "my"), (b"fo", "mzxq"), (b"foo", "mzxw6"), (b"foob", "mzxw6yq"),
     (b"fooba", "mzxw6ytb"), (b"foobar", "mzxw6ytboi")],
)
def test_id_text_rfc4648_vectors(raw: bytes, text: str) -> None:
    assert id_to_text(raw) == text
    assert id_from_text(text) == raw
    assert id_from_text(text.upper()) == raw


@pytest.mark.parametrize(
    "bad",
    ["", "my======", "my==", "m", "mz", "mzxw6ytbo1", "mzxw 6ytb", "mzxw6ytb\n", "ｍｙ",
     "\u212ay",  # the Kelvin sign lower-cases to ASCII "k"
     "mzxw6ytb\u0131", "a" * (MAX_ID_TEXT_CHARS + 1)],
)
def test_id_from_text_rejects_non_canonical_text(bad: str) -> None:
    with pytest.raises(IdTextError):
        id_from_text(bad)


def test_id_from_text_checks_the_size() -> None:
    text = id_to_text(ANN.aid)
    assert id_from_text(text, AID_LEN) == ANN.aid
    with pytest.raises(IdTextError, match="where 10 are expected"):
        id_from_text(text, DID_LEN)


@given(st.binary(min_size=1, max_size=80))
def test_id_text_round_trips(raw: bytes) -> None:
    text = id_to_text(raw)
    assert text == text.lower() and "=" not in text
    assert id_from_text(text, len(raw)) == raw


def test_generate_draws_from_the_injected_rng() -> None:
    calls: list[int] = []

    def rng(n: int) -> bytes:
        calls.append(n)
        return bytes([len(calls)]) * n

    account = AccountKeys.generate(rng)
    device = DeviceKeys.generate(rng)
    assert account == AccountKeys(b"\x01" * 32)
    assert device == DeviceKeys(b"\x02" * 32, b"\x03" * 32)
    assert device.ddk == P.x25519_public(b"\x03" * 32)
    assert calls == [32, 32, 32]


def test_key_reprs_never_show_private_halves() -> None:
    for shown in (repr(ANN), repr(LAPTOP), str(ANN), str(LAPTOP)):
        for secret in (AIK_SEED, DSK1_SEED, DDK1_PRIV):
            assert secret.hex() not in shown
            assert repr(secret) not in shown
    assert repr(ANN) == "AccountKeys(aid=dm2rpt226cwinohp5ccffeemix24pydz)"


def test_keys_refuse_wrong_lengths() -> None:
    with pytest.raises(LocalProtocolError):
        AccountKeys(AIK_SEED[:16])
    with pytest.raises(LocalProtocolError):
        DeviceKeys(DSK1_SEED, DDK1_PRIV[:31])


# -- device certificates ----------------------------------------------------------


def test_certificate_golden_bytes() -> None:
    cert = laptop_cert()
    assert cert.to_wire() == GOLDEN_CERT
    cert.verify()
    assert cert.aid == ANN.aid and cert.did == LAPTOP.did


def test_certificate_signature_covers_tag_and_hand_built_canonical_map() -> None:
    # Keys in UTF-8 byte order: acct, ddk, dsk, name, ts; built by hand, not by canonical().
    body = (
        b"\x85"
        + b"\xa4acct\xc4\x20" + AIK_PUB
        + b"\xa3ddk\xc4\x20" + DDK1_PUB
        + b"\xa3dsk\xc4\x20" + DSK1_PUB
        + b"\xa4name\xa6laptop"
        + b"\xa2ts\xcf" + TS.to_bytes(8, "big")
    )
    cert = laptop_cert()
    assert signed_bytes(CERT_TAG, cert.to_map()) == b"cove-cert-v1" + body
    P.ed25519_verify(AIK_PUB, b"cove-cert-v1" + body, cert.sig)
    # The same map under another structure's TAG is not this signature.
    with pytest.raises(BadSignature):
        P.ed25519_verify(AIK_PUB, b"cove-manifest-v1" + body, cert.sig)


def test_certificate_round_trips() -> None:
    cert = laptop_cert()
    again = DeviceCertificate.from_wire(cert.to_wire())
    assert again == cert
    again.verify()


def test_certificate_ignores_unknown_keys() -> None:
    cert = laptop_cert()
    data = cert_wire({**cert.to_map(), "zz": [1, {"x": b"y"}]})
    assert DeviceCertificate.from_wire(data) == cert


def test_forged_certificate_signature_is_rejected() -> None:
    cert = laptop_cert()
    flipped = bytes([cert.sig[0] ^ 1]) + cert.sig[1:]
    with pytest.raises(BadSignature):
        dataclasses.replace(cert, sig=flipped).verify()


@pytest.mark.parametrize(
    "change",
    [{"ddk": DDK2_PUB}, {"dsk": DSK2_PUB}, {"name": "Laptop"}, {"ts": TS + 1},
     {"acct": MALLORY.aik}],
)
def test_altered_certificate_field_breaks_the_signature(change: dict[str, object]) -> None:
    data = cert_wire({**laptop_cert().to_map(), **change})
    with pytest.raises(BadSignature):
        DeviceCertificate.from_wire(data).verify()


def test_certificate_signed_by_another_account_for_anns_key_is_rejected() -> None:
    # Mallory signs a certificate that claims Ann's account.
    fields: dict[str, object] = {
        "acct": ANN.aik, "dsk": DSK2_PUB, "ddk": DDK2_PUB, "name": "evil", "ts": TS,
    }
    forged = DeviceCertificate(sig=MALLORY.sign(CERT_TAG, fields), **fields)  # type: ignore[arg-type]
    with pytest.raises(BadSignature):
        forged.verify()


def test_renaming_issues_a_new_certificate_for_the_same_keys() -> None:
    old = laptop_cert()
    new = old.renamed(ANN, "work laptop", TS + 5)
    new.verify()
    assert (new.dsk, new.ddk, new.acct) == (old.dsk, old.ddk, old.acct)
    assert new.name == "work laptop" and new.sig != old.sig
    with pytest.raises(LocalProtocolError):
        old.renamed(MALLORY, "stolen", TS + 6)


def test_name_bounds_at_issue() -> None:
    four_byte = "\U0001f600"
    assert laptop_cert(name=four_byte * (MAX_NAME_BYTES // 4)).name.encode() == (
        four_byte.encode() * 16
    )
    for bad in ("", "x" * (MAX_NAME_BYTES + 1), four_byte * 16 + "x", "\udcff"):
        with pytest.raises(LocalProtocolError):
            laptop_cert(name=bad)


@pytest.mark.parametrize(
    "change",
    [{"acct": AIK_PUB[:31]}, {"dsk": DSK1_PUB + b"\0"}, {"ddk": b""}, {"sig": b"\0" * 63},
     {"ts": -1}, {"ts": MAX_TS + 1}, {"ts": True}, {"name": 5}],
)
def test_certificate_constructor_rejects_bad_fields(change: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        dataclasses.replace(laptop_cert(), **change)


@pytest.mark.parametrize(
    "change",
    [{"acct": AIK_PUB[:31]}, {"dsk": DSK1_PUB + b"\0"}, {"ddk": "ddk"}, {"sig": b"\0" * 65},
     {"name": "x" * (MAX_NAME_BYTES + 1)}, {"name": ""}, {"name": b"laptop"},
     {"ts": -1}, {"ts": MAX_TS + 1}, {"ts": 2**64 - 1}, {"ts": False}, {"ts": None}],
)
def test_certificate_decoder_rejects_oversized_and_mistyped_fields(
    change: dict[str, object],
) -> None:
    data = cert_wire({**laptop_cert().to_map(), **change})
    with pytest.raises(RemoteProtocolError):
        DeviceCertificate.from_wire(data)


@pytest.mark.parametrize("missing", ["acct", "dsk", "ddk", "name", "ts", "sig"])
def test_certificate_decoder_requires_every_field(missing: str) -> None:
    fields = laptop_cert().to_map()
    del fields[missing]
    with pytest.raises(RemoteProtocolError):
        DeviceCertificate.from_wire(cert_wire(fields))


def test_certificate_size_cap_is_enough_and_enforced() -> None:
    largest = laptop_cert(name="\U0001f600" * 16, ts=MAX_TS).to_wire()
    assert len(largest) == 269 <= MAX_CERT_BYTES
    padded = cert_wire({**laptop_cert().to_map(), "pad": b"\0" * MAX_CERT_BYTES})
    assert len(padded) > MAX_CERT_BYTES
    with pytest.raises(RemoteProtocolError, match="cap"):
        DeviceCertificate.from_wire(padded)


def test_prekey_bundles_refuse_fields_no_peer_would_accept() -> None:
    from crypto.prekeys import MAX_PREKEY_ID, PrekeyBundle, make_bundle

    keys = DeviceKeys.generate()
    for bad in ({"spk_id": -1}, {"spk_id": MAX_PREKEY_ID + 1}, {"ts": -5}, {"pqpk_id": 2**40}):
        kw = {"spk_id": 1, "pqpk_id": 1, "ts": 0, **bad}
        with pytest.raises(LocalProtocolError):
            make_bundle(dsk_seed=keys.dsk_seed, ddk=keys.ddk, **kw)
    good, _ = make_bundle(dsk_seed=keys.dsk_seed, ddk=keys.ddk, spk_id=1, pqpk_id=1, ts=0)
    with pytest.raises(LocalProtocolError):
        PrekeyBundle(b"x", good.spk, 1, good.pqpk, 1, 0, good.sig)
    assert PrekeyBundle.from_wire(good.to_wire()) == good
