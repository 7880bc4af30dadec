"""Merkle trees as in RFC 6962 (Certificate Transparency), section 2.1, with RFC 9162's
inclusion-proof verification algorithm.

    leaf hash  = SHA-256(0x00 || leaf data)
    node hash  = SHA-256(0x01 || left || right)
    MTH of n>1 leaves = node(MTH(first k), MTH(rest)), k the largest power of two below n
    MTH of no leaves  = SHA-256("")

Leaf and node hashes are domain-separated by their first byte, so a node can never pass for a
leaf (second-preimage attacks on the tree do not work). Odd nodes are never duplicated.

Written here rather than taken from `pymerkle` (which does implement RFC 6962 hashing): it is
about 80 lines an auditor can read in one sitting, its proofs are plain lists of hex hashes that
any RFC 6962 verifier accepts, and `pymerkle` pins an exact `cachetools` release that conflicts
with the one the rest of the environment needs. It is tested against the Certificate
Transparency reference vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


class MerkleError(ValueError):
    """A proof that cannot be computed or checked (bad index, size or hash length)."""


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf's data."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash (MTH) of a list of leaf hashes."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def audit_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The inclusion proof (audit path) of leaf `index`: sibling hashes from the leaf upwards."""
    n = len(leaves)
    if not 0 <= index < n:
        raise MerkleError(f"leaf index {index} is outside a tree of {n} leaves")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return audit_path(index, leaves[:k]) + [root(leaves[k:])]
    return audit_path(index - k, leaves[k:]) + [root(leaves[:k])]


def root_from_path(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root that `path` leads to from `leaf` at `index` in a tree of `size` leaves.

    RFC 9162, section 2.1.3.2. Raises `MerkleError` when the path cannot belong to such a tree
    (too long or too short for the index and size).
    """
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is outside a tree of {size} leaves")
    for h in (leaf, *path):
        if len(h) != 32:
            raise MerkleError(f"a hash in the proof is {len(h)} bytes, not 32")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise MerkleError(
                f"the path has {len(path)} hashes, more than a leaf at {index} of {size} needs"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError(
            f"the path has {len(path)} hashes, fewer than a leaf at {index} of {size} needs"
        )
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], expected_root: bytes
) -> bool:
    """True when `path` proves that `leaf` is leaf `index` of the tree with `expected_root`."""
    try:
        return root_from_path(index, size, leaf, path) == expected_root
    except MerkleError:
        return False
