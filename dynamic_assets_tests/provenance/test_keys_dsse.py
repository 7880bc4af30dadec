"""The signing key (generated owner-only, or given; never shown) and DSSE/in-toto envelopes,
checked with securesystemslib's independent DSSE implementation."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from dynamic_assets.provenance import dsse
from dynamic_assets.provenance import signing as keys


def test_a_key_is_generated_once_with_owner_only_permissions(tmp_path):
    first = keys.load_signing_key(tmp_path)
    path = keys.key_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = keys.load_signing_key(tmp_path)
    assert again.public_key_hex == first.public_key_hex
    assert keys.load_signing_key(tmp_path / "other", create=False) is None
    # Its repr names only the public key.
    pem = path.read_text()
    assert "PRIVATE KEY" in pem
    assert pem.split("\n")[1] not in repr(first) and first.public_key_hex in repr(first)


def test_a_key_file_others_can_read_is_refused(tmp_path):
    keys.load_signing_key(tmp_path)
    keys.key_path(tmp_path).chmod(0o644)
    with pytest.raises(keys.SigningKeyError, match="readable by others .*chmod 600"):
        keys.load_signing_key(tmp_path)


def test_the_key_can_be_given_as_pem_hex_or_base64(tmp_path):
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    got = {
        keys.load_signing_key(tmp_path, text).public_key_hex
        for text in (pem, seed.hex(), base64.b64encode(seed).decode())
    }
    assert len(got) == 1
    assert not keys.key_path(tmp_path).exists()  # nothing written when the key is given
    with pytest.raises(keys.SigningKeyError, match="ATTESTATION_SIGNING_KEY: expected"):
        keys.load_signing_key(tmp_path, "not-a-key")
    public = got.pop()
    pub_pem = keys.load_signing_key(tmp_path, pem).public_pem()
    for text in (public, base64.b64encode(bytes.fromhex(public)).decode(), pub_pem):
        assert keys.public_key_from_text(text) == public


def test_pae_is_the_dsse_v1_encoding():
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def _statement():
    return dsse.statement("market", "2024-06-01", "ab" * 32, {"fingerprint_record": {"rows": 3}})


def test_envelopes_verify_here_and_with_securesystemslib(tmp_path):
    key = keys.load_signing_key(tmp_path)
    env = dsse.sign_envelope(_statement(), key)
    stmt = dsse.verify_envelope(env, key.public_key_hex)
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["subject"] == [
        {"name": "datasets/market/2024-06-01", "digest": {"sha256": "ab" * 32}}
    ]

    theirs = Envelope.from_dict(env)
    ssl_key = SSlibKey(key.key_id, "ed25519", "ed25519", {"public": key.public_key_hex})
    assert key.key_id in theirs.verify([ssl_key], 1)
    assert json.loads(theirs.payload) == stmt


def test_a_changed_payload_or_another_key_does_not_verify(tmp_path):
    key = keys.load_signing_key(tmp_path / "a")
    other = keys.load_signing_key(tmp_path / "b")
    env = dsse.sign_envelope(_statement(), key)

    changed = dict(env)
    stmt = _statement()
    stmt["subject"][0]["digest"]["sha256"] = "cd" * 32
    changed["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    with pytest.raises(dsse.DsseError, match="no signature in the envelope verifies"):
        dsse.verify_envelope(changed, key.public_key_hex)

    forged = dsse.sign_envelope(_statement(), other)
    forged["signatures"][0]["keyid"] = key.key_id
    with pytest.raises(dsse.DsseError, match="signed by another key"):
        dsse.verify_envelope(forged, key.public_key_hex)
    ssl_key = SSlibKey(key.key_id, "ed25519", "ed25519", {"public": key.public_key_hex})
    with pytest.raises(VerificationError):
        Envelope.from_dict(forged).verify([ssl_key], 1)

    with pytest.raises(dsse.DsseError, match="payloadType"):
        dsse.verify_envelope({**env, "payloadType": "text/plain"}, key.public_key_hex)
