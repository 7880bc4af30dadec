"""RFC 6962 Merkle trees: the Certificate Transparency reference roots and audit paths, every
leaf of every tree size up to 40, and proofs that must not verify."""

from __future__ import annotations

import pytest

from dynamic_assets.provenance import merkle

# The reference leaves and tree heads of the Certificate Transparency test suite (RFC 6962).
DATA = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
PATHS = [  # (leaf index, tree size, audit path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
LEAVES = [merkle.leaf_hash(d) for d in DATA]


def test_roots_match_the_rfc_6962_reference_for_every_size():
    for n in range(0, 9):
        assert merkle.root(LEAVES[:n]).hex() == ROOTS[n], f"{n} leaves"


def test_leaf_and_node_hashes_are_domain_separated():
    a, b = LEAVES[1], LEAVES[2]
    assert merkle.leaf_hash(a + b) != merkle.node_hash(a, b)
    assert merkle.leaf_hash(b"") == bytes.fromhex(ROOTS[1])


@pytest.mark.parametrize(("index", "size", "path"), PATHS)
def test_audit_paths_match_the_reference(index, size, path):
    got = merkle.audit_path(index, LEAVES[:size])
    assert [h.hex() for h in got] == path
    assert merkle.verify_inclusion(index, size, LEAVES[index], got, bytes.fromhex(ROOTS[size]))


def test_every_leaf_of_every_tree_verifies_and_a_wrong_one_does_not():
    for n in range(1, 41):
        leaves = [merkle.leaf_hash(f"leaf {i}".encode()) for i in range(n)]
        root = merkle.root(leaves)
        for i in range(n):
            path = merkle.audit_path(i, leaves)
            assert merkle.verify_inclusion(i, n, leaves[i], path, root)
            other = leaves[(i + 1) % n]
            assert n == 1 or not merkle.verify_inclusion(i, n, other, path, root)
            if path:
                bent = [bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]]
                assert not merkle.verify_inclusion(i, n, leaves[i], bent, root)
                assert not merkle.verify_inclusion(i, n, leaves[i], path[:-1], root)
            assert not merkle.verify_inclusion(i, n, leaves[i], [*path, root], root)


def test_a_path_of_the_wrong_length_says_so():
    leaves = LEAVES[:5]
    path = merkle.audit_path(1, leaves)
    with pytest.raises(merkle.MerkleError, match="more than"):
        merkle.root_from_path(1, 5, leaves[1], [*path, path[0]])
    with pytest.raises(merkle.MerkleError, match="fewer than"):
        merkle.root_from_path(1, 5, leaves[1], path[:1])
    with pytest.raises(merkle.MerkleError, match="outside a tree of 5"):
        merkle.audit_path(5, leaves)
