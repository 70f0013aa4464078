"""Account manifests: signatures, §3 rules, version verdicts (DESIGN §3, §9)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import primitives as P
from crypto.encoding import canonical, signed_bytes
from crypto.errors import BadSignature, LocalProtocolError, RemoteProtocolError
from crypto.identity import (
    MAX_NAME_BYTES,
    MAX_TS,
    DeviceCertificate,
    DeviceKeys,
    id_to_text,
)
from crypto.manifest import (
    MANIFEST_TAG,
    MAX_DEVICES,
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_VERSION,
    AccountManifest,
    ManifestFork,
    ManifestRejected,
    ManifestVerdict,
    StaleManifest,
    adopt_manifest,
    device_changes,
    judge_manifest,
    next_manifest_version,
)
from tests.crypto.test_identity import (
    AIK_PUB,
    ANN,
    DDK2_PUB,
    DESKTOP,
    GOLDEN_CERT,
    LAPTOP,
    MALLORY,
    TS,
    desktop_cert,
    laptop_cert,
)

h = bytes.fromhex

DESKTOP_SIG = h(
    "84343e1c5770f380dbea0805d611a651e7fad72ae734e155268871d5b2f0f755"
    "4e30e9aa733416a10ce583dbe408b7847ab8db410d76cb26dc96c386d4f63500"
)
MANIFEST_SIG = h(
    "d4f4f892803f7d4cf5a89c5f8fbc1efbeb9d9895b556c4bd54eafc138e8d12f1"
    "c75376674ddad2bb7be9d5c8f754cef74f426713ddbf93d4fe7396e06c75360c"
)


def manifest(ver: int = 1, name: str = "Ann", devices: Any = None) -> AccountManifest:
    devs = [laptop_cert(), desktop_cert()] if devices is None else devices
    return AccountManifest.issue(ANN, ver=ver, name=name, devices=devs, ts=TS + 2)


def many_certs(n: int) -> list[DeviceCertificate]:
    out = []
    for i in range(n):
        keys = DeviceKeys(bytes([i + 1]) * 32, bytes([i + 101]) * 32)
        out.append(
            DeviceCertificate.issue(ANN, dsk=keys.dsk, ddk=keys.ddk, name=f"dev{i}", ts=TS)
        )
    return out


def signed_wire(devices: list[Any], *, signer: Any = ANN, **over: Any) -> bytes:
    """A manifest signed by ``signer`` around any device list, bypassing the constructor."""
    fields: dict[str, Any] = {"acct": ANN.aik, "ver": 1, "name": "Ann", "ts": TS + 2}
    fields.update(over)
    fields["devices"] = devices
    return canonical({**fields, "sig": signer.sign(MANIFEST_TAG, fields)})


def maps(certs: list[DeviceCertificate]) -> list[dict[str, Any]]:
    return [c.to_map() for c in certs]


# -- bytes and signatures -----------------------------------------------------------


def test_manifest_golden_bytes() -> None:
    desktop = (
        b"\x86\xa4acct\xc4\x20" + AIK_PUB + b"\xa3ddk\xc4\x20" + DESKTOP.ddk
        + b"\xa3dsk\xc4\x20" + DESKTOP.dsk + b"\xa4name\xa7desktop"
        + b"\xa3sig\xc4\x40" + DESKTOP_SIG + b"\xa2ts\xcf" + (TS + 1).to_bytes(8, "big")
    )
    expected = (
        b"\x86\xa4acct\xc4\x20" + AIK_PUB
        + b"\xa7devices\x92" + GOLDEN_CERT + desktop
        + b"\xa4name\xa3Ann"
        + b"\xa3sig\xc4\x40" + MANIFEST_SIG
        + b"\xa2ts\xcf" + (TS + 2).to_bytes(8, "big")
        + b"\xa3ver\x01"
    )
    m = manifest()
    assert m.to_wire() == expected
    assert len(expected) == 566
    m.verify()


def test_manifest_round_trips_and_ignores_unknown_keys() -> None:
    m = manifest()
    assert AccountManifest.from_wire(m.to_wire()) == m
    extra = m.to_map()
    extra["zz"] = {"future": [1, 2]}
    extra["devices"][0]["zz"] = b"x"
    again = AccountManifest.from_wire(canonical(extra))
    assert again == m
    again.verify()


def test_forged_manifest_signature_is_rejected() -> None:
    m = manifest()
    with pytest.raises(BadSignature):
        dataclasses.replace(m, sig=bytes([m.sig[0] ^ 0x80]) + m.sig[1:]).verify()
    with pytest.raises(BadSignature):
        dataclasses.replace(m, ver=2).verify()


def test_manifest_signed_by_another_account_is_rejected() -> None:
    data = signed_wire(maps([laptop_cert()]), signer=MALLORY)
    with pytest.raises(BadSignature):
        AccountManifest.from_wire(data).verify()


def test_device_swapped_in_by_replacing_a_certificate_ddk_is_rejected() -> None:
    m = manifest().to_map()
    m["devices"][0]["ddk"] = b"\x42" * 32
    with pytest.raises(BadSignature):
        AccountManifest.from_wire(canonical(m)).verify()


def test_manifest_verify_checks_each_certificate_even_if_aik_signed_the_list() -> None:
    # A certificate whose ddk was swapped, then the whole list re-signed by AIK:
    # the manifest signature is good, the certificate's is not.
    swapped = dataclasses.replace(laptop_cert(), ddk=DDK2_PUB)
    m = AccountManifest.issue(ANN, ver=1, name="Ann", devices=[swapped], ts=TS)
    P.ed25519_verify(ANN.aik, signed_bytes(MANIFEST_TAG, m.to_map()), m.sig)
    with pytest.raises(BadSignature):
        m.verify()


def test_certificate_signed_by_another_account_is_rejected() -> None:
    foreign = DeviceCertificate.issue(MALLORY, dsk=DESKTOP.dsk, ddk=DESKTOP.ddk, name="x", ts=TS)
    with pytest.raises(LocalProtocolError, match="another account"):
        manifest(devices=[laptop_cert(), foreign])
    data = signed_wire(maps([laptop_cert(), foreign]))
    with pytest.raises(RemoteProtocolError, match="another account"):
        AccountManifest.from_wire(data)


# -- §3 rules: device count, duplicates, bounds ---------------------------------------


def test_sixteen_devices_pass_and_seventeen_are_rejected() -> None:
    certs = many_certs(MAX_DEVICES + 1)
    full = manifest(devices=certs[:MAX_DEVICES])
    full.verify()
    assert len(full.to_wire()) <= MAX_MANIFEST_BYTES
    with pytest.raises(LocalProtocolError, match="1 to 16 devices"):
        manifest(devices=certs)
    with pytest.raises(RemoteProtocolError, match="1 to 16"):
        AccountManifest.from_wire(signed_wire(maps(certs)))


def test_zero_devices_are_rejected() -> None:
    with pytest.raises(LocalProtocolError):
        manifest(devices=[])
    with pytest.raises(RemoteProtocolError):
        AccountManifest.from_wire(signed_wire([]))


def test_duplicate_ddk_or_dsk_is_rejected() -> None:
    twin_ddk = DeviceCertificate.issue(ANN, dsk=DESKTOP.dsk, ddk=LAPTOP.ddk, name="twin", ts=TS)
    twin_dsk = DeviceCertificate.issue(ANN, dsk=LAPTOP.dsk, ddk=DESKTOP.ddk, name="twin", ts=TS)
    for twin, what in ((twin_ddk, "DDK"), (twin_dsk, "DSK")):
        with pytest.raises(LocalProtocolError, match=what):
            manifest(devices=[laptop_cert(), twin])
        with pytest.raises(RemoteProtocolError, match=what):
            AccountManifest.from_wire(signed_wire(maps([laptop_cert(), twin])))


@pytest.mark.parametrize(
    "over",
    [{"name": "x" * (MAX_NAME_BYTES + 1)}, {"name": ""}, {"ver": 0}, {"ver": -1},
     {"ver": MAX_MANIFEST_VERSION + 1}, {"ver": True}, {"ts": MAX_TS + 1},
     {"acct": AIK_PUB + b"\0"}, {"sig": b"\0" * 65}],
)
def test_oversized_or_out_of_range_manifest_fields_are_rejected(over: dict[str, Any]) -> None:
    fields = manifest().to_map()
    fields.update(over)
    with pytest.raises(RemoteProtocolError):
        AccountManifest.from_wire(canonical(fields))


def test_oversized_manifest_is_rejected_before_parsing() -> None:
    padded = canonical({**manifest().to_map(), "pad": b"\0" * MAX_MANIFEST_BYTES})
    with pytest.raises(RemoteProtocolError, match="cap"):
        AccountManifest.from_wire(padded)


def test_largest_valid_manifest_fits_the_cap() -> None:
    wide = "\U0001f600" * 16
    certs = []
    for i, c in enumerate(many_certs(MAX_DEVICES)):
        certs.append(DeviceCertificate.issue(ANN, dsk=c.dsk, ddk=c.ddk, name=wide, ts=MAX_TS - i))
    m = AccountManifest.issue(ANN, ver=MAX_MANIFEST_VERSION, name=wide, devices=certs, ts=MAX_TS)
    assert len(m.to_wire()) == 4521 <= MAX_MANIFEST_BYTES
    assert AccountManifest.from_wire(m.to_wire()) == m


def test_a_device_entry_that_is_not_a_map_is_rejected() -> None:
    for bad in ([b"cert"], [GOLDEN_CERT], [1], [None]):
        with pytest.raises(RemoteProtocolError):
            AccountManifest.from_wire(signed_wire(bad))


# -- lookups, revisions, device changes ---------------------------------------------


def test_lookups() -> None:
    m = manifest()
    assert m.aid == ANN.aid
    assert m.ddks == {LAPTOP.ddk, DESKTOP.ddk}
    assert m.contains(LAPTOP.ddk) and not m.contains(b"\0" * 32)
    assert m.device(DESKTOP.ddk) == desktop_cert()
    assert m.device(b"\0" * 32) is None
    assert m.device_by_did(LAPTOP.did) == laptop_cert()
    assert m.device_by_did(b"\0" * 10) is None
    assert id_to_text(m.aid) == "dm2rpt226cwinohp5ccffeemix24pydz"


def test_revise_needs_a_higher_version_and_the_same_account() -> None:
    m = manifest(ver=4)
    r = m.revise(ANN, ver=5, ts=TS + 9, devices=[laptop_cert()])
    r.verify()
    assert (r.ver, r.name, r.devices) == (5, "Ann", (laptop_cert(),))
    assert m.revise(ANN, ver=9, ts=TS, name="Annie").devices == m.devices
    for ver in (4, 3):
        with pytest.raises(LocalProtocolError):
            m.revise(ANN, ver=ver, ts=TS)
    with pytest.raises(LocalProtocolError):
        m.revise(MALLORY, ver=5, ts=TS)


def test_device_changes_name_added_removed_and_renamed() -> None:
    v1 = manifest(ver=1, devices=[laptop_cert()])
    v2 = manifest(ver=2, devices=[laptop_cert(), desktop_cert()])
    v3 = manifest(ver=3, devices=[desktop_cert(name="office")])
    first = device_changes(None, v1)
    assert first.added == (laptop_cert(),) and not first.removed and not first.changed
    assert device_changes(v1, v2).added == (desktop_cert(),)
    c = device_changes(v2, v3)
    assert c.removed == (laptop_cert(),) and not c.added
    assert c.changed == ((desktop_cert(), desktop_cert(name="office")),)
    assert device_changes(v2, v2).empty and not c.empty
    other = AccountManifest.issue(MALLORY, ver=1, name="M", devices=[
        DeviceCertificate.issue(MALLORY, dsk=LAPTOP.dsk, ddk=LAPTOP.ddk, name="m", ts=TS)],
        ts=TS)
    with pytest.raises(LocalProtocolError):
        device_changes(v1, other)


# -- version rules ----------------------------------------------------------------------


def test_judge_manifest_verdicts() -> None:
    v1, v2 = manifest(ver=1), manifest(ver=2)
    v2_fork = manifest(ver=2, name="Not Ann")
    assert judge_manifest(None, v1) is ManifestVerdict.NEWER
    assert judge_manifest(v1, v2) is ManifestVerdict.NEWER
    assert judge_manifest(v2, v2) is ManifestVerdict.SAME
    assert judge_manifest(v2, v1) is ManifestVerdict.STALE
    assert judge_manifest(v2, v2_fork) is ManifestVerdict.FORK
    assert [v.adopt for v in ManifestVerdict] == [True, False, False, False]


def test_a_re_encoded_copy_is_the_same_manifest_not_a_fork() -> None:
    m = manifest(ver=3)
    noisy = m.to_map()
    noisy["extra"] = "relay junk"
    assert judge_manifest(m, AccountManifest.from_wire(canonical(noisy))) is ManifestVerdict.SAME


def test_judge_refuses_manifests_of_two_accounts() -> None:
    other = AccountManifest.issue(MALLORY, ver=1, name="M", devices=[
        DeviceCertificate.issue(MALLORY, dsk=LAPTOP.dsk, ddk=LAPTOP.ddk, name="m", ts=TS)],
        ts=TS)
    with pytest.raises(LocalProtocolError):
        judge_manifest(manifest(), other)


def test_adopt_keeps_the_highest_and_raises_on_stale_or_fork() -> None:
    v1, v2 = manifest(ver=1), manifest(ver=2)
    fork = manifest(ver=2, devices=[laptop_cert()])
    assert adopt_manifest(None, v1) is v1
    assert adopt_manifest(v1, v2) is v2
    assert adopt_manifest(v2, manifest(ver=2)) is v2
    with pytest.raises(StaleManifest) as stale:
        adopt_manifest(v2, v1)
    assert (stale.value.held, stale.value.offered) == (v2, v1)
    with pytest.raises(ManifestFork) as forked:
        adopt_manifest(v2, fork)
    assert (forked.value.held, forked.value.offered) == (v2, fork)
    assert "compromised" in str(forked.value)
    # A lagging sibling's old manifest must not read as a reason to drop its link.
    assert issubclass(StaleManifest, ManifestRejected)
    assert not issubclass(ManifestRejected, RemoteProtocolError)


@given(st.integers(1, 50), st.integers(1, 50))
def test_verdict_follows_version_order(held_ver: int, new_ver: int) -> None:
    verdict = judge_manifest(manifest(ver=held_ver), manifest(ver=new_ver))
    expected = (
        ManifestVerdict.NEWER if new_ver > held_ver
        else ManifestVerdict.STALE if new_ver < held_ver
        else ManifestVerdict.SAME
    )
    assert verdict is expected


def test_next_manifest_version_goes_above_every_sibling() -> None:
    assert next_manifest_version([]) == 1
    assert next_manifest_version([3]) == 4
    assert next_manifest_version([3, 9, 5]) == 10
    assert next_manifest_version(iter([2, 2])) == 3
    with pytest.raises(LocalProtocolError):
        next_manifest_version([MAX_MANIFEST_VERSION])


def test_adopt_refuses_an_unverified_higher_manifest() -> None:
    from dataclasses import replace

    from crypto.errors import BadSignature

    v1 = manifest(ver=1)
    forged = replace(manifest(ver=99), sig=bytes(64))
    with pytest.raises(BadSignature):
        adopt_manifest(v1, forged)
    assert adopt_manifest(v1, manifest(ver=2)).ver == 2
