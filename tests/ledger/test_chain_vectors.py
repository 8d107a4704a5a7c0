"""The chain format against vectors computed outside Python (coreutils sha256sum + xxd), from the
text of DESIGN.md section 5 alone, so an independent verifier would agree with us byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from audit.ledger.chain import (
    ZERO_HASH,
    StoredEvent,
    canonical_json,
    chain_hash,
    leaf_hash,
    rfc3339,
    verify_chain,
)

EVENT0 = {"type": "demo", "seq": 0, "note": "café", "log_id": "coding-audit"}
EVENT1 = {"seq": 1, "type": "demo", "log_id": "coding-audit"}
# printf '\x00%s' '<canonical>' | sha256sum
LEAF0 = "4fb19c73cd381e6eae6bf8d0179f6b487bb29231a508392252f14e3f5ec09da1"
LEAF1 = "00c292c7e529b8b510b59bea6b6d8f54c8ee45ad3f4a61b4cb317baac5972d7f"
# (printf '\x02'; <prev 32 bytes>; <uint64_be seq>; <leaf>) | sha256sum
CHAIN0 = "8cf0ebff13dd07033a1ae7d50bfa22a526ba722d0f0ec2a8541248ea18d2cafa"
CHAIN1 = "b13ff9dce1dba43c4ad871aed4a6e024be9e1753e2115efeccffdc4cc33ccccd"


def test_canonical_json_sorts_keys_keeps_utf8_and_has_no_whitespace() -> None:
    assert canonical_json(EVENT0) == '{"log_id":"coding-audit","note":"café","seq":0,"type":"demo"}'.encode()
    assert (
        canonical_json({"b": [1, {"d": None, "c": True}], "a": "x"})
        == b'{"a":"x","b":[1,{"c":true,"d":null}]}'
    )


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        canonical_json({"amount": 1.5})


def test_leaf_and_chain_hashes_match_hand_computed_vectors() -> None:
    leaf0, leaf1 = leaf_hash(canonical_json(EVENT0)), leaf_hash(canonical_json(EVENT1))
    assert leaf0.hex() == LEAF0
    assert leaf1.hex() == LEAF1
    chain0 = chain_hash(ZERO_HASH, 0, leaf0)
    assert chain0.hex() == CHAIN0
    assert chain_hash(chain0, 1, leaf1).hex() == CHAIN1


def test_rfc3339_is_utc_with_z() -> None:
    moment = datetime(2026, 3, 1, 7, 30, 5, 123456, tzinfo=timezone(timedelta(hours=-5)))
    assert rfc3339(moment) == "2026-03-01T12:30:05.123456Z"
    assert rfc3339(datetime(2026, 1, 1, tzinfo=UTC)).endswith("Z")


def _events(n: int) -> list[StoredEvent]:
    out, prev = [], ZERO_HASH
    for seq in range(n):
        payload = canonical_json({"log_id": "coding-audit", "seq": seq, "type": "t"})
        leaf = leaf_hash(payload)
        prev = chain_hash(prev, seq, leaf)
        out.append(StoredEvent(seq, payload, leaf, prev))
    return out


def test_verify_chain_accepts_a_good_chain_and_names_the_first_bad_seq() -> None:
    good = _events(6)
    result = verify_chain(good, log_id="coding-audit")
    assert result.ok and result.events_checked == 6 and result.head_seq == 5
    assert result.chain_hash == good[-1].chain_hash

    edited = list(good)
    edited[3] = StoredEvent(
        3, edited[3].payload.replace(b'"t"', b'"x"'), edited[3].leaf_hash, edited[3].chain_hash
    )
    assert verify_chain(edited).first_bad_seq == 3

    gap = good[:2] + good[3:]
    assert verify_chain(gap).first_bad_seq == 2

    swapped = [good[0], good[2], good[1], *good[3:]]
    assert verify_chain(swapped).first_bad_seq == 1


def test_incremental_verification_from_a_trusted_point() -> None:
    events = _events(5)
    result = verify_chain(events[3:], start_seq=3, previous_chain=events[2].chain_hash)
    assert result.ok and result.events_checked == 2 and result.head_seq == 4
    assert not verify_chain(events[3:], start_seq=3, previous_chain=ZERO_HASH).ok
