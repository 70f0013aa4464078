"""Contacts in the store: one account per device key (a manifest cannot claim another's)."""

from __future__ import annotations

import pytest

from cove.contacts import DeviceClaimed, owner_of, remember
from cove.store import Store
from crypto.identity import AccountKeys, DeviceCertificate, DeviceKeys
from crypto.manifest import AccountManifest

T = 1_790_000_000_000


def account_with(device: DeviceKeys, name: str) -> tuple[AccountKeys, AccountManifest]:
    acct = AccountKeys.generate()
    cert = DeviceCertificate.issue(acct, dsk=device.dsk, ddk=device.ddk, name="phone", ts=T)
    return acct, AccountManifest.issue(acct, ver=1, name=name, devices=[cert], ts=T)


def test_a_manifest_claiming_another_accounts_device_is_refused() -> None:
    store = Store(None, bytes(32))
    bobs_phone = DeviceKeys.generate()
    _, bob = account_with(bobs_phone, "Bob")
    _, mallory = account_with(bobs_phone, "Aaron")  # signs a cert for Bob's keys
    remember(store, bob, state="contact", now=T)
    with pytest.raises(DeviceClaimed):
        remember(store, mallory, state="contact", now=T)
    owner = owner_of(store, bobs_phone.ddk)
    assert owner is not None and owner.name == "Bob"
