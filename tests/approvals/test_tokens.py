"""Every way a token can be wrong is refused, each with its own reason."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runestone.approvals import tokens
from runestone.audit.checkpoint import Signer
from runestone.home import layout
from runestone.identity import create_identity


@pytest.fixture
def keyed(isolated_home):
    where = layout()
    identity = create_identity(where)
    return identity, Signer(where.private_key_file)


def make(identity, signer, **changes):
    fields = {"request_id": "req_1", "action_hash": "a" * 64, "policy_hash": "p" * 64,
              "expires": int(time.time()) + 600, "audience": identity.runtime_id}
    fields.update(changes)
    claims = tokens.new_claims(**fields)
    return claims, tokens.issue(claims, signer)


def check(identity, token, **kwargs):
    return tokens.verify(token, public_key_hex=identity.public_key,
                         runtime_id=identity.runtime_id, now=kwargs.pop("now", time.time()),
                         **kwargs)


def refused(identity, token, **kwargs) -> str:
    with pytest.raises(tokens.TokenRefused) as info:
        check(identity, token, **kwargs)
    assert str(info.value)
    return info.value.code


def reencode(token: str, **changes) -> str:
    body, _, signature = token.partition(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.update(changes)
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + signature


@pytest.mark.parametrize("expiry", ["1e999", "-Infinity", "NaN", "1.5", "true", '"9"',
                                    "null"])
def test_an_expiry_that_is_not_a_whole_number_is_refused_not_a_crash(keyed, expiry):
    """Found by the single-character property test below: one changed digit made the expiry
    `1e999`, which JSON reads as infinity, and `int()` raised OverflowError past the checks."""
    identity, signer = keyed
    _, token = make(identity, signer)
    body, _, signature = token.partition(".")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    data = json.loads(raw)
    forged = raw.replace(f'"expires":{data["expires"]}', f'"expires":{expiry}')
    assert forged != raw
    token = base64.urlsafe_b64encode(forged.encode()).rstrip(b"=").decode() + "." + signature
    assert refused(identity, token) == "malformed"


def test_a_good_token_verifies(keyed):
    identity, signer = keyed
    claims, token = make(identity, signer)
    assert check(identity, token, action_hash="a" * 64, policy_hash="p" * 64) == claims


def test_bad_signature(keyed):
    identity, signer = keyed
    _, token = make(identity, signer)
    body, _, signature = token.partition(".")
    flipped = ("B" if signature[5] != "B" else "C")
    assert refused(identity, body + "." + signature[:5] + flipped + signature[6:]) == \
        "bad-signature"


def test_every_altered_field_is_named(keyed):
    identity, signer = keyed
    claims, token = make(identity, signer)
    for field, value in (("request_id", "req_2"), ("action_hash", "b" * 64),
                         ("policy_hash", "q" * 64), ("expires", claims.expires + 3600),
                         ("nonce", "0" * 32), ("audience", "rt_other")):
        with pytest.raises(tokens.TokenRefused) as info:
            check(identity, reencode(token, **{field: value}), issued=claims)
        assert info.value.code == "altered" and field in str(info.value)
    # Without the issued record, an altered token is still a bad signature.
    assert refused(identity, reencode(token, expires=claims.expires + 1)) == "bad-signature"


def test_expired_with_clock_skew_allowance(keyed):
    identity, signer = keyed
    claims, token = make(identity, signer, expires=int(time.time()) - 10)
    assert check(identity, token, skew_seconds=30) == claims  # inside the skew
    assert refused(identity, token, skew_seconds=5) == "expired"
    assert refused(identity, token, now=time.time() + 3600) == "expired"


def test_token_for_another_runtime(keyed):
    identity, signer = keyed
    _, token = make(identity, signer, audience="rt_someone_else")
    assert refused(identity, token) == "wrong-audience"


def test_token_for_another_action_or_policy(keyed):
    identity, signer = keyed
    _, token = make(identity, signer)
    assert refused(identity, token, action_hash="c" * 64) == "action-mismatch"
    assert refused(identity, token, policy_hash="c" * 64) == "policy-mismatch"


@pytest.mark.parametrize("token", ["", ".", "abc", "abc.def", "e30.AA", "!!!.???"])
def test_malformed(keyed, token):
    identity, _ = keyed
    assert refused(identity, token) == "malformed"


def test_another_runtimes_key_does_not_verify(keyed, tmp_path, monkeypatch):
    identity, _signer = keyed
    monkeypatch.setenv("RUNESTONE_HOME", str(tmp_path / "other"))
    other_layout = layout()
    other = create_identity(other_layout)
    _, token = make(other, Signer(other_layout.private_key_file), audience=identity.runtime_id)
    assert refused(identity, token) == "bad-signature"


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 10_000), replacement=st.sampled_from("ABCDEFabcdef0123456789-_.="))
def test_any_single_character_change_is_refused(keyed, index, replacement):
    identity, signer = keyed
    _, token = _SIGNED.get(identity.runtime_id) or _SIGNED.setdefault(
        identity.runtime_id, make(identity, signer))
    index %= len(token)
    mutated = token[:index] + replacement + token[index + 1:]
    if mutated == token:
        return
    try:
        check(identity, mutated)
    except tokens.TokenRefused:
        return
    # base64 padding bits: a change that decodes to the very same bytes is the same token.
    assert _decoded(mutated) == _decoded(token)


_SIGNED: dict = {}


def _decoded(token: str) -> tuple[bytes, bytes]:
    body, _, signature = token.partition(".")
    return (base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)),
            base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
