"""Accounts and devices for transport tests: real keys, real certificates."""

from __future__ import annotations

from dataclasses import dataclass

from crypto.identity import AccountKeys, DeviceCertificate, DeviceKeys
from transport.session import Admission, Hello, LinkSession, Policy, Verdict

TS = 1_790_000_000_000


@dataclass
class Device:
    account: AccountKeys
    keys: DeviceKeys
    cert: DeviceCertificate
    mver: int = 1

    @property
    def hello(self) -> Hello:
        return Hello(self.cert, self.mver)


def make_device(account: AccountKeys | None = None, name: str = "laptop") -> Device:
    account = account or AccountKeys.generate()
    keys = DeviceKeys.generate()
    cert = DeviceCertificate.issue(account, dsk=keys.dsk, ddk=keys.ddk, name=name, ts=TS)
    return Device(account, keys, cert)


def table_policy(table: dict[bytes, Admission], held_mver: int = 1) -> Policy:
    """Judge by account key; unknown accounts are strangers; a higher mver is stale."""

    def policy(cert: DeviceCertificate, mver: int) -> Verdict:
        return Verdict(table.get(cert.acct, Admission.STRANGER), manifest_stale=mver > held_mver)

    return policy


def pair(
    a: Device,
    b: Device,
    *,
    a_sees_b: Admission = Admission.CONTACT,
    b_sees_a: Admission = Admission.CONTACT,
    expected: bytes | None = None,
) -> tuple[LinkSession, LinkSession]:
    """An initiator ``a`` dialling ``b`` (expecting ``expected`` or b's real key)."""
    ini = LinkSession(
        initiator=True,
        static_private=a.keys.ddk_private,
        hello=a.hello,
        policy=table_policy({b.account.aik: a_sees_b}),
        expected_remote=expected or b.keys.ddk,
    )
    resp = LinkSession(
        initiator=False,
        static_private=b.keys.ddk_private,
        hello=b.hello,
        policy=table_policy({a.account.aik: b_sees_a}),
    )
    return ini, resp
