"""Provenance: fingerprints of curated dataset versions, a signed hash-chained attestation
ledger with RFC 6962 Merkle proofs, in-toto/DSSE proof documents, TON anchoring, and the
verifier and lineage report that auditors run.

Plain Python (no Dagster): the assets in `dynamic_assets.defs.provenance` and the command line
call these modules.
"""
