"""What each side checks and builds after the linking handshake (DESIGN §9 step 3).

Sans-I/O rules, one function per step, used by ``cove.linking``:

* the primary checks the new device's ``hello`` (:func:`check_hello`): the
  DDK is the one the Noise handshake proved, and the DSK signed the hello
  over this channel's handshake hash;
* once the person confirmed, it builds the certificate and the next
  manifest (:func:`make_offer`), above every version it may have let out,
  refusing a 17th device;
* the new device checks the ``offer`` (:func:`check_offer`) before it trusts
  anything in it: both signatures, its own keys in the certificate, the
  certificate in the manifest, and the primary's proven DDK in it too;
* the primary checks the final ``done`` (:func:`check_done`): a bundle for
  the new DDK, signed by the new DSK.

A peer's fault is a RemoteProtocolError (its detail stays in local logs);
a refusal (``no``) becomes the LinkError the person should read.
"""

from __future__ import annotations

from cove.link_errors import LinkDeclined, TooManyDevices
from cove.link_handshake import LinkChannel
from cove.link_messages import DeviceHello, LinkDone, LinkMessage, LinkOffer, LinkRefused
from cove.link_state import AccountState
from crypto.errors import BadSignature, RemoteProtocolError
from crypto.identity import AccountKeys, DeviceCertificate, DeviceKeys
from crypto.manifest import MAX_DEVICES, AccountManifest, next_manifest_version
from crypto.prekeys import PrekeyBundle

FULL_MESSAGE = (
    f"The account already has {MAX_DEVICES} devices, the most it can hold;"
    " unlink one before linking another."
)


def _expect(message: LinkMessage, kind: type[LinkMessage], what: str) -> None:
    if isinstance(message, LinkRefused):
        if message.why == "full":
            raise TooManyDevices(FULL_MESSAGE)
        raise LinkDeclined("The other device declined the link; nothing was changed.")
    if not isinstance(message, kind):
        raise RemoteProtocolError(f"expected the {what}, got another message")


def check_hello(message: LinkMessage, channel: LinkChannel) -> DeviceHello:
    """The primary's check of the new device's ``hello`` (bound to the channel)."""
    _expect(message, DeviceHello, "device hello")
    assert isinstance(message, DeviceHello)
    if message.ddk != channel.remote_static:
        raise RemoteProtocolError("the hello's DDK is not the key that did the handshake")
    message.verify(channel.handshake_hash)
    return message


def make_offer(
    account: AccountKeys, held: AccountManifest, hello: DeviceHello, state: AccountState,
    *, now: int, floor: int = 0,
) -> LinkOffer:
    """The certificate for the new device and the next manifest listing it (primary only).

    The manifest's version is one above both the held version and ``floor``: the highest
    version another device may hold though this one does not (one a sibling showed, or one
    an earlier ``offer`` carried whose ``done`` never came), so that no two manifests of one
    version are ever signed (§3).
    """
    if held.acct != account.aik:
        raise RemoteProtocolError("the held manifest is not this account's")
    if held.contains(hello.ddk) or any(c.dsk == hello.dsk for c in held.devices):
        raise RemoteProtocolError("that device is already part of this account")
    if len(held.devices) >= MAX_DEVICES:
        raise TooManyDevices(FULL_MESSAGE)
    cert = DeviceCertificate.issue(account, dsk=hello.dsk, ddk=hello.ddk, name=hello.name,
                                   ts=now)
    manifest = held.revise(account, ver=next_manifest_version([held.ver, floor]), ts=now,
                           devices=[*held.devices, cert])
    return LinkOffer(cert, manifest, *state.counts)


def check_offer(message: LinkMessage, device: DeviceKeys, primary_ddk: bytes) -> LinkOffer:
    """The new device's check of the ``offer``, before anything in it is believed."""
    _expect(message, LinkOffer, "offer")
    assert isinstance(message, LinkOffer)
    cert, manifest = message.cert, message.manifest
    try:
        manifest.verify()  # the manifest's own signature and every certificate in it
        cert.verify()
    except BadSignature as exc:
        raise RemoteProtocolError("the offered manifest or certificate does not verify") from exc
    if cert.ddk != device.ddk or cert.dsk != device.dsk:
        raise RemoteProtocolError("the certificate is not for this device's keys")
    if cert.acct != manifest.acct or manifest.device(device.ddk) != cert:
        raise RemoteProtocolError("the offered manifest does not list the offered certificate")
    if not manifest.contains(primary_ddk):
        raise RemoteProtocolError("the offering device is not in the manifest it offers")
    return message


def check_done(message: LinkMessage, hello: DeviceHello) -> PrekeyBundle:
    """The primary's check of ``done``: the new device's bundle, signed by its DSK."""
    _expect(message, LinkDone, "final done")
    assert isinstance(message, LinkDone)
    bundle = message.bundle
    if bundle.ddk != hello.ddk:
        raise RemoteProtocolError("the bundle is for another device")
    try:
        bundle.verify(hello.dsk)
    except BadSignature as exc:
        raise RemoteProtocolError("the new device's bundle does not verify") from exc
    return bundle
