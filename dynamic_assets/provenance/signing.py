"""The pipeline's Ed25519 signing key: ledger entries and DSSE envelopes are signed with it.

Given as `ATTESTATION_SIGNING_KEY` (PEM, or the 32-byte seed as hex or base64), or generated on
first use into `<DYNAMIC_ASSETS_HOME>/keys/attestation-ed25519.pem` with owner-only permissions
(folder 0700, file 0600). A key file that others can read is refused. The private key is never
printed, logged or stored anywhere else; `SigningKey`'s repr shows only the public key.

Public keys travel as 64 hex characters (the raw 32 bytes); `public_key_from_text` also accepts
base64 and PEM, so an auditor can pin whatever form they were given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

KEY_ENV = "ATTESTATION_SIGNING_KEY"
KEY_FILE = Path("keys") / "attestation-ed25519.pem"


class SigningKeyError(RuntimeError):
    """The signing key cannot be loaded or created; the message says where and why."""


def key_path(home: Path) -> Path:
    """Where the generated signing key lives under the home folder."""
    return Path(home) / KEY_FILE


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key_hex: str) -> str:
    """A short identifier of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()[:16]


class SigningKey:
    """An Ed25519 private key that signs; its repr and str never show the private part."""

    def __init__(self, private: Ed25519PrivateKey, source: str):
        self._private = private
        self.source = source  # where it came from: the key file path or the variable name
        self.public_key_hex = _raw_public(private.public_key()).hex()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key_hex)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def public_pem(self) -> str:
        return (
            self._private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_key_hex}, source={self.source})"

    __str__ = __repr__


def _private_from_text(text: str, where: str) -> Ed25519PrivateKey:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(
                f"{where}: not a readable unencrypted PEM private key ({exc})"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{where}: the PEM key is not an Ed25519 key")
        return key
    seed = None
    if len(text) == 64:
        try:
            seed = bytes.fromhex(text)
        except ValueError:
            seed = None
    if seed is None:
        try:
            seed = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            seed = None
    if seed is None or len(seed) != 32:
        raise SigningKeyError(
            f"{where}: expected a PEM Ed25519 private key, or its 32-byte seed as hex or base64"
        )
    return Ed25519PrivateKey.from_private_bytes(seed)


def _read_key_file(path: Path) -> Ed25519PrivateKey:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningKeyError(
            f"{path}: the signing key file is readable by others (mode {mode:04o}); "
            f"run `chmod 600 {path}`"
        )
    return _private_from_text(path.read_text(encoding="ascii"), str(path))


def _write_new_key(path: Path) -> Ed25519PrivateKey:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _read_key_file(path)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def load_signing_key(
    home: Path, env_value: str | None = None, *, create: bool = True
) -> SigningKey | None:
    """The pipeline's signing key: from `env_value` (ATTESTATION_SIGNING_KEY) if given, else the
    key file under `home`, generated there if it does not exist and `create` is true.

    Returns None only when there is no key and `create` is false.
    """
    if env_value:
        return SigningKey(_private_from_text(env_value, KEY_ENV), KEY_ENV)
    path = key_path(home)
    if path.exists():
        return SigningKey(_read_key_file(path), str(path))
    if not create:
        return None
    return SigningKey(_write_new_key(path), str(path))


def public_key_from_text(text: str) -> str:
    """A public key as 64 hex characters, from hex, base64 or PEM text."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except ValueError as exc:
            raise SigningKeyError(f"not a readable PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise SigningKeyError("the PEM public key is not an Ed25519 key")
        return _raw_public(key).hex()
    raw = None
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise SigningKeyError(
            "expected an Ed25519 public key: 64 hex characters, 32 bytes in base64, or PEM"
        )
    return raw.hex()


def verify_signature(public_key_hex: str, signature: bytes, message: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `message` by the given key."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
    except ValueError:
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
