"""in-toto Statement v1 inside a DSSE v1 envelope, signed with the pipeline's Ed25519 key.

DSSE (https://github.com/secure-systems-lab/dsse, protocol v1): the signature is over the
pre-authentication encoding

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

(LEN in ASCII decimal bytes), and the envelope is `{"payload": base64(body), "payloadType": type,
"signatures": [{"keyid": ..., "sig": base64(signature)}]}`. The body is an in-toto Statement v1
(https://in-toto.io/Statement/v1) whose subject is the dataset version with its fingerprint as
the sha256 digest.

Written here (a few lines of the two specifications) so that the verifier has no dependency
beyond `cryptography`; the tests check the envelopes with `securesystemslib`'s independent DSSE
implementation.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from dynamic_assets.provenance.canonical import canonical_json
from dynamic_assets.provenance.signing import SigningKey, key_id, verify_signature

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://dynamic-capital.example/dynamic-assets/attestation/fingerprint/v1"


class DsseError(ValueError):
    """An envelope that is malformed, or whose signature does not verify."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def subject_name(dataset: str, version: str) -> str:
    """The in-toto subject name of a curated dataset version."""
    return f"datasets/{dataset}/{version}"


def statement(dataset: str, version: str, fingerprint: str, predicate: dict[str, Any]) -> dict:
    """An in-toto Statement v1 about one dataset version."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name(dataset, version), "digest": {"sha256": fingerprint}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


def sign_envelope(stmt: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """A DSSE envelope holding `stmt` (canonical JSON), signed with `key`."""
    body = canonical_json(stmt)
    sig = key.sign(pae(PAYLOAD_TYPE, body))
    return {
        "payload": base64.b64encode(body).decode("ascii"),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": key.key_id, "sig": base64.b64encode(sig).decode("ascii")}],
    }


def open_envelope(envelope: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The payload bytes and the decoded statement, without checking signatures."""
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        payload_type = envelope["payloadType"]
    except (KeyError, TypeError, binascii.Error, ValueError) as exc:
        raise DsseError(f"not a DSSE envelope: {exc}") from None
    if payload_type != PAYLOAD_TYPE:
        raise DsseError(f"payloadType is {payload_type!r}, expected {PAYLOAD_TYPE!r}")
    try:
        stmt = json.loads(payload)
    except ValueError as exc:
        raise DsseError(f"the payload is not JSON: {exc}") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise DsseError(f"the payload is not an in-toto Statement v1 ({STATEMENT_TYPE})")
    return payload, stmt


def verify_envelope(envelope: dict[str, Any], public_key_hex: str) -> dict[str, Any]:
    """The statement, if a signature in the envelope verifies with the given key.

    Raises `DsseError` saying what is wrong (malformed, no signature, or none that verifies).
    """
    payload, stmt = open_envelope(envelope)
    sigs = envelope.get("signatures") or []
    if not sigs:
        raise DsseError("the envelope carries no signature")
    message = pae(PAYLOAD_TYPE, payload)
    for s in sigs:
        try:
            sig = base64.b64decode(s["sig"], validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError):
            continue
        if verify_signature(public_key_hex, sig, message):
            return stmt
    raise DsseError(
        f"no signature in the envelope verifies with key {key_id(public_key_hex)} "
        f"({public_key_hex[:16]}…): it was signed by another key or changed after signing"
    )
