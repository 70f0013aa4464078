"""Account creation, loading and prekey rotation (DESIGN §3, §12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.account import (
    OLD_PREKEY_KEEP_MS,
    PREKEY_ROTATION_MS,
    create_account,
    current_bundle,
    has_account,
    load_account,
    prekey_secrets,
    rotate_prekeys_if_due,
)
from cove.store import Store
from crypto import primitives as P
from crypto.errors import LocalProtocolError

T0 = 1_790_000_000_000


def test_first_open_makes_a_complete_account_that_reloads(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", bytes(32))
    assert not has_account(store)
    made = create_account(store, name="Ann", device_name="laptop", now=T0)
    made.manifest.verify()
    assert made.is_primary and made.manifest.ver == 1
    assert made.manifest.devices == (made.cert,)
    bundle = current_bundle(store)
    bundle.verify(made.device.dsk)
    assert bundle.ddk == made.device.ddk
    store.close()
    again = load_account(Store(tmp_path / "db", bytes(32)))
    assert again.manifest == made.manifest and again.cert == made.cert
    assert again.device.ddk == made.device.ddk and again.account_keys is not None
    assert again.account_keys.aik == made.aik and again.name == "Ann"


def test_names_are_checked() -> None:
    store = Store(None, bytes(32))
    with pytest.raises(LocalProtocolError):
        create_account(store, name="", device_name="laptop", now=T0)
    with pytest.raises(LocalProtocolError):
        create_account(store, name="x" * 65, device_name="laptop", now=T0)
    assert not has_account(store)


def test_prekeys_rotate_weekly_and_old_ones_are_kept_thirty_days() -> None:
    store = Store(None, bytes(32))
    acct = create_account(store, name="Ann", device_name="laptop", now=T0)
    first = current_bundle(store)
    assert rotate_prekeys_if_due(store, acct.device, now=T0 + PREKEY_ROTATION_MS - 1) is None
    second = rotate_prekeys_if_due(store, acct.device, now=T0 + PREKEY_ROTATION_MS)
    assert second is not None and second.spk_id == first.spk_id + 1
    assert current_bundle(store) == second
    ids = [s.spk_id for s in prekey_secrets(store)]
    assert ids == [second.spk_id, first.spk_id]  # the retired one still opens late messages
    for s in prekey_secrets(store):
        assert P.x25519_public(s.spk_private) in (first.spk, second.spk)
    later = T0 + PREKEY_ROTATION_MS + OLD_PREKEY_KEEP_MS + 1
    rotate_prekeys_if_due(store, acct.device, now=later)
    assert first.spk_id not in [s.spk_id for s in prekey_secrets(store)]
