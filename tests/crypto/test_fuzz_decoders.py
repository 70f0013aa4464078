"""Every decoder of peer bytes in crypto/ raises only RemoteProtocolError (STYLE rule 4).

Each decoder is fed arbitrary bytes and mutations of valid encodings:
flipped bytes, truncations, a wrong msgpack type in every field (nested
ones too), extra keys, duplicate keys, nesting bombs and huge declared
lengths. A decoder may return a value of its type or raise
RemoteProtocolError; anything else fails the test. The registry below must
list every class in crypto/ that has ``from_wire`` (checked by the last
test), so a new wire type cannot skip this file.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

import crypto
from crypto.encoding import canonical
from crypto.envelope import KIND_FIRST, KIND_NORMAL, MAX_ENVELOPE_BYTES, Envelope
from crypto.errors import RemoteProtocolError
from crypto.identity import MAX_CERT_BYTES, DeviceCertificate
from crypto.manifest import MAX_DEVICES, MAX_MANIFEST_BYTES, AccountManifest
from crypto.prekeys import MAX_BUNDLE_BYTES, PrekeyBundle, make_bundle
from crypto.ratchet import MAX_HEADER_BYTES, RatchetHeader
from crypto.x3dh import X3dhHeader
from tests.crypto.test_identity import ANN, LAPTOP, desktop_cert, laptop_cert
from tests.crypto.test_manifest import many_certs

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Decoder:
    name: str
    cls: type
    parse: Callable[[bytes], object]
    cap: int
    samples: tuple[bytes, ...]

    @property
    def is_map(self) -> bool:
        return isinstance(msgpack.unpackb(self.samples[0], raw=False), dict)


def _seeded(seed: int) -> Callable[[int], bytes]:
    state = [seed]

    def rng(n: int) -> bytes:
        state[0] += 1
        return bytes([state[0] % 256]) * n

    return rng


def _bundle() -> bytes:
    bundle, _ = make_bundle(
        dsk_seed=LAPTOP.dsk_seed, ddk=LAPTOP.ddk, spk_id=7, pqpk_id=8, ts=1, rng=_seeded(3)
    )
    return bundle.to_wire()


def _envelopes() -> tuple[bytes, ...]:
    header = RatchetHeader(b"\x05" * 32, 2, 9).to_bytes()
    x3dh = X3dhHeader(ik=LAPTOP.ddk, ek=b"\x06" * 32, spk_id=1, pqpk_id=2, kem_ct=b"\x07" * 1088)
    eid, to = b"\x01" * 16, b"\x02" * 32
    first = Envelope(eid, LAPTOP.ddk, to, KIND_FIRST, 3, x3dh, header, b"c" * 40)
    normal = Envelope(eid, LAPTOP.ddk, to, KIND_NORMAL, 3, None, header, b"c" * 17)
    return first.to_wire(), normal.to_wire()


def _manifests() -> tuple[bytes, ...]:
    two = AccountManifest.issue(ANN, ver=2, name="Ann", devices=[laptop_cert(), desktop_cert()],
                                ts=5)
    full = AccountManifest.issue(ANN, ver=3, name="Ann", devices=many_certs(MAX_DEVICES), ts=6)
    return two.to_wire(), full.to_wire()


DECODERS = [
    Decoder("PrekeyBundle", PrekeyBundle, PrekeyBundle.from_wire, MAX_BUNDLE_BYTES, (_bundle(),)),
    Decoder("DeviceCertificate", DeviceCertificate, DeviceCertificate.from_wire, MAX_CERT_BYTES,
            (laptop_cert().to_wire(),)),
    Decoder("AccountManifest", AccountManifest, AccountManifest.from_wire, MAX_MANIFEST_BYTES,
            _manifests()),
    Decoder("Envelope", Envelope, Envelope.from_wire, MAX_ENVELOPE_BYTES, _envelopes()),
    # Not a from_wire, but peer bytes too: the ratchet header inside an envelope's ``h``.
    Decoder("RatchetHeader", RatchetHeader, RatchetHeader.from_bytes, MAX_HEADER_BYTES,
            (RatchetHeader(b"\x05" * 32, 2, 9).to_bytes(),)),
]
MAP_DECODERS = [d for d in DECODERS if d.is_map]
ids = [d.name for d in DECODERS]
map_ids = [d.name for d in MAP_DECODERS]


def outcome(dec: Decoder, data: bytes) -> object | None:
    """The parsed value, or None on RemoteProtocolError; any other exception fails."""
    try:
        value = dec.parse(data)
    except RemoteProtocolError:
        return None
    assert isinstance(value, dec.cls)
    return value


def paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every map entry and array item inside a decoded value, nested ones included."""
    items: Any = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        yield (*prefix, key)
        if isinstance(child, (dict, list)):
            yield from paths(child, (*prefix, key))


def replaced(value: Any, path: Path, new: Any) -> Any:
    out = copy.deepcopy(value)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return out


def at(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


def decoded(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


def packed(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


plain_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=40) | st.binary(max_size=80)
)
exts = st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8))


def _nested(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
        max_leaves=12,
    )


plain_values = _nested(plain_scalars)
"""Every msgpack type Cove's wire can carry (it never uses ext types)."""
values = _nested(plain_scalars | exts)


def kind_of(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "other"
    for kind in (int, float, str, bytes, list, dict):
        if isinstance(value, kind):
            return kind.__name__
    return "other"


# -- the valid encodings really are valid -------------------------------------------------


@pytest.mark.parametrize("dec", DECODERS, ids=ids)
def test_samples_parse_and_re_encode(dec: Decoder) -> None:
    for sample in dec.samples:
        value = dec.parse(sample)
        assert isinstance(value, dec.cls)
        encode = getattr(value, "to_wire", None) or value.to_bytes  # type: ignore[attr-defined]
        assert encode() == sample


# -- arbitrary input ------------------------------------------------------------------------


@pytest.mark.parametrize("dec", DECODERS, ids=ids)
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes(dec: Decoder, data: bytes) -> None:
    outcome(dec, data)


@pytest.mark.parametrize("dec", DECODERS, ids=ids)
@given(value=values)
def test_arbitrary_msgpack_values(dec: Decoder, value: Any) -> None:
    outcome(dec, packed(value))


@pytest.mark.parametrize("dec", DECODERS, ids=ids)
@pytest.mark.parametrize(
    "top", [None, True, 0, -1, 2**64 - 1, 1.5, "text", b"bin", [], {}, [1, 2, 3],
            msgpack.ExtType(1, b"x")],
)
def test_wrong_top_level_types(dec: Decoder, top: Any) -> None:
    assert outcome(dec, packed(top)) is None


@pytest.mark.parametrize("dec", DECODERS, ids=ids)
def test_size_cap_is_checked_before_parsing(dec: Decoder) -> None:
    if dec.is_map:
        # A valid encoding, padded with an unknown key to one byte past the cap.
        base = decoded(dec.samples[0])
        pad = dec.cap - len(dec.samples[0])
        data = packed({**base, "~pad": b"\0" * pad})
        data = packed({**base, "~pad": b"\0" * (pad - (len(data) - dec.cap) + 1)})
    else:
        data = dec.samples[0] + b"\0" * (dec.cap + 1 - len(dec.samples[0]))
    assert len(data) == dec.cap + 1
    with pytest.raises(RemoteProtocolError, match="exceeds"):
        dec.parse(data)


# -- mutations of valid encodings -------------------------------------------------------------


@pytest.mark.parametrize("dec", DECODERS, ids=ids)
@given(data=st.data())
def test_flipped_bytes(dec: Decoder, data: st.DataObject) -> None:
    sample = bytearray(data.draw(st.sampled_from(dec.samples)))
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(sample) - 1), st.integers(1, 255)), min_size=1,
                 max_size=4)
    )
    for pos, xor in flips:
        sample[pos] ^= xor
    outcome(dec, bytes(sample))


@pytest.mark.parametrize("dec", DECODERS, ids=ids)
def test_every_truncation_is_rejected(dec: Decoder) -> None:
    for sample in dec.samples:
        for cut in range(len(sample)):
            assert outcome(dec, sample[:cut]) is None, cut


@pytest.mark.parametrize("dec", DECODERS, ids=ids)
@given(data=st.data())
def test_wrong_type_in_any_field_is_rejected(dec: Decoder, data: st.DataObject) -> None:
    base = decoded(data.draw(st.sampled_from(dec.samples)))
    path = data.draw(st.sampled_from(list(paths(base))))
    original = kind_of(at(base, path))
    new = data.draw(values.filter(lambda v: kind_of(v) != original))
    assert outcome(dec, packed(replaced(base, path, new))) is None


@pytest.mark.parametrize("dec", MAP_DECODERS, ids=map_ids)
@given(data=st.data())
def test_extra_keys_are_ignored(dec: Decoder, data: st.DataObject) -> None:
    sample = data.draw(st.sampled_from(dec.samples))
    base = decoded(sample)
    known = {k for s in dec.samples for p in paths(decoded(s)) for k in p if isinstance(k, str)}
    maps = [()] + [p for p in paths(base) if isinstance(at(base, p), dict)]
    where = data.draw(st.sampled_from(maps))
    extra = data.draw(st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in known) | st.binary(max_size=8),
        plain_values, min_size=1, max_size=3,
    ))
    target = at(base, where)
    mutated = replaced(base, where, {**target, **extra}) if where else {**base, **extra}
    encoded = packed(mutated)
    result = outcome(dec, encoded)
    if len(encoded) <= dec.cap:
        assert result == dec.parse(sample)
    else:
        assert result is None


@pytest.mark.parametrize("dec", MAP_DECODERS, ids=map_ids)
def test_an_ext_value_anywhere_is_refused_even_under_an_unknown_key(dec: Decoder) -> None:
    # encoding.unpack sets max_ext_len=0: Cove's wire has no ext types at all.
    base = decoded(dec.samples[0])
    assert outcome(dec, packed({**base, "~ext": msgpack.ExtType(1, b"x")})) is None
    assert outcome(dec, packed({**base, "~ts": msgpack.Timestamp(1)})) is None


@pytest.mark.parametrize("dec", MAP_DECODERS, ids=map_ids)
@given(data=st.data())
def test_duplicate_keys(dec: Decoder, data: st.DataObject) -> None:
    # msgpack keeps the last of two equal keys; the decoder must cope either way.
    base = decoded(data.draw(st.sampled_from(dec.samples)))
    key = data.draw(st.sampled_from(sorted(base)))
    dup = data.draw(values)
    entries = b"".join(packed(k) + packed(v) for k, v in base.items())
    count = len(base) + 1
    head = bytes([0x80 | count]) if count < 16 else b"\xde" + count.to_bytes(2, "big")
    raw = head + entries + packed(key) + packed(dup)
    assert packed(decoded(raw)[key]) == packed(dup)
    result = outcome(dec, raw)
    if result is not None and dup != base[key]:
        assert result != dec.parse(packed(base))


BOMBS = {
    "arrays": lambda d: b"\x91" * d + b"\xc0",
    "maps": lambda d: b"\x81\xa1k" * d + b"\xc0",
}


@pytest.mark.parametrize("dec", DECODERS, ids=ids)
@pytest.mark.parametrize("shape", sorted(BOMBS))
@pytest.mark.parametrize("depth", [100, 2_000, 100_000])
def test_nesting_bombs(dec: Decoder, shape: str, depth: int) -> None:
    bomb = BOMBS[shape](depth)
    assert outcome(dec, bomb) is None
    base = decoded(dec.samples[0])
    for path in paths(base):
        assert outcome(dec, splice(base, path, bomb)) is None
    if dec.is_map:
        # Under an unknown key a shallow bomb is ignored; a deep one is refused.
        result = outcome(dec, splice(base, ("~bomb",), bomb))
        assert result is None or result == dec.parse(dec.samples[0])
        if depth > 1_000:
            assert result is None


HUGE_HEADERS = [
    b"\xc6\xff\xff\xff\xff",  # bin 32
    b"\xdb\xff\xff\xff\xff",  # str 32
    b"\xdd\xff\xff\xff\xff",  # array 32
    b"\xdf\xff\xff\xff\xff",  # map 32
    b"\xc9\xff\xff\xff\xff\x01",  # ext 32
    b"\xc5\xff\xff",  # bin 16
    b"\xde\xff\xff",  # map 16
]
SENTINEL = msgpack.ExtType(77, b"\x00sentinel\x00")


def splice(base: Any, path: Path, raw: bytes) -> bytes:
    """Encode ``base`` with the value at ``path`` replaced by the raw bytes ``raw``."""
    if len(path) == 1 and path[0] == "~bomb":
        encoded = packed({**base, "~bomb": SENTINEL})
    else:
        encoded = packed(replaced(base, path, SENTINEL))
    marker = packed(SENTINEL)
    assert encoded.count(marker) == 1
    return encoded.replace(marker, raw)


@pytest.mark.parametrize("dec", DECODERS, ids=ids)
@pytest.mark.parametrize("header", HUGE_HEADERS, ids=lambda b: b.hex())
def test_huge_declared_lengths(dec: Decoder, header: bytes) -> None:
    assert outcome(dec, header + b"\0" * 8) is None
    base = decoded(dec.samples[0])
    for path in paths(base):
        assert outcome(dec, splice(base, path, header + b"abc")) is None


def test_map_declaring_more_entries_than_sent_is_rejected() -> None:
    for dec in MAP_DECODERS:
        sample = dec.samples[0]
        n = len(decoded(sample))
        lying = bytes([0x80 | (n + 1)]) + sample[1:] if n < 15 else b"\xde\xff\xff" + sample[3:]
        assert outcome(dec, lying) is None


def test_non_canonical_but_equal_encodings_parse_to_the_same_value() -> None:
    for dec in MAP_DECODERS:
        for sample in dec.samples:
            shuffled = dict(reversed(list(decoded(sample).items())))
            assert dec.parse(packed(shuffled)) == dec.parse(sample)
            assert packed(shuffled) != sample or len(shuffled) == 1


# -- the registry covers crypto/ -------------------------------------------------------------


def test_every_from_wire_in_crypto_is_fuzzed() -> None:
    found: set[type] = set()
    for info in pkgutil.iter_modules(crypto.__path__):
        module = importlib.import_module(f"crypto.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__ and hasattr(obj, "from_wire"):
                found.add(obj)
    covered = {d.cls for d in DECODERS}
    assert found, "no from_wire found at all: the scan is broken"
    assert found <= covered, f"not fuzzed: {sorted(c.__name__ for c in found - covered)}"
    assert {PrekeyBundle, DeviceCertificate, AccountManifest, Envelope} <= found


def test_canonical_and_plain_pack_agree_on_samples() -> None:
    # The mutations re-pack with msgpack directly; make sure that is the wire form.
    for dec in MAP_DECODERS:
        for sample in dec.samples:
            assert canonical(decoded(sample)) == sample
