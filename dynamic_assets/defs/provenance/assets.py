"""Provenance assets per declared dataset, partitioned by version like the dataset's assets:

provenance/<dataset>/fingerprint  the version's fingerprint (spec v1) in the `datasets` registry;
                                  its DataVersion, so downstream goes stale only on a real change
provenance/<dataset>/attestation  the fingerprint in a signed ledger entry (Merkle batch), its
                                  proof in Postgres and in the drive, anchored on TON if configured
"""

import dagster as dg

from dynamic_assets.db.tables import version_lock
from dynamic_assets.declarations.model import Dataset, Declarations
from dynamic_assets.defs.datasets.asset_args import dataset_asset_args
from dynamic_assets.defs.datasets.assets import curated_key, dataset_pool
from dynamic_assets.defs.datasets.metadata import md_table
from dynamic_assets.defs.provenance.keys import attestation_key, fingerprint_key
from dynamic_assets.defs.provenance.resources import (
    AttestationResource,
    build_attestation_resource,
)
from dynamic_assets.defs.resources import DriveResource, PostgresResource
from dynamic_assets.provenance import attest, ledger
from dynamic_assets.provenance.fingerprint import (
    SPEC,
    FingerprintError,
    compute_fingerprint,
    curated_fingerprint,
    store_fingerprint,
    stored_fingerprint,
)
from dynamic_assets.settings import Settings

FINGERPRINT_CODE_VERSION = SPEC.rsplit("/", 1)[-1]  # "v1": a new spec marks fingerprints stale
ATTESTATION_CODE_VERSION = "1"


def _key(doc: dict) -> tuple[str, str, str]:
    return doc["dataset"], doc["version"], doc["fingerprint"]


def build_provenance_assets(ds: Dataset) -> list[dg.AssetsDefinition]:
    """The fingerprint and attestation assets of one declared dataset."""
    common = dataset_asset_args(ds)

    @dg.asset(
        key=fingerprint_key(ds.name),
        deps=[curated_key(ds.name)],
        pool=dataset_pool(ds.name),
        kinds={"postgres"},
        code_version=FINGERPRINT_CODE_VERSION,
        description=f"Fingerprint ({SPEC}) of one curated version of `{ds.name}`: SHA-256 over "
        "the source files' SHA-256, the declared schema, the row count and a content digest of "
        "the curated rows computed inside Postgres (docs/fingerprint.md). Written to the "
        "`datasets` registry and used as the asset's data version.",
        **common,
    )
    def fingerprint(
        context: dg.AssetExecutionContext, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        version = context.partition_key
        db = postgres.database()
        try:
            with (
                db.connect(autocommit=True) as held,
                version_lock(held, ds.name, version),
                db.connect() as conn,
            ):
                # Committed with the curated version (its swap's transaction); computed and
                # stored here only for a version curated without it.
                fp = stored_fingerprint(conn, ds, version)
                if fp is None:
                    fp = compute_fingerprint(conn, ds, version)
                    store_fingerprint(conn, fp)
        except FingerprintError as exc:
            raise dg.Failure(
                description=f"{ds.name} {version}: {exc}",
                metadata={"dataset": ds.name, "version": version},
            ) from None
        return dg.MaterializeResult(
            metadata={
                "fingerprint": fp.fingerprint,
                "spec": SPEC,
                "content_digest": fp.content_digest,
                "dagster/row_count": fp.rows,
                "files": len(fp.files),
                "bytes": fp.size_bytes,
                "seconds": round(fp.seconds, 3),
                "content_digest_seconds": round(fp.digest_seconds, 3),
                "sources": dg.MetadataValue.md(
                    md_table(
                        ["file", "bytes", "sha256"],
                        [(f["path"], f["size_bytes"], f["sha256"]) for f in fp.files],
                    )
                ),
            },
            data_version=dg.DataVersion(fp.fingerprint),
        )

    @dg.asset(
        key=attestation_key(ds.name),
        deps=[fingerprint_key(ds.name)],
        pool=dataset_pool(ds.name),
        kinds={"postgres"},
        code_version=ATTESTATION_CODE_VERSION,
        description=f"Attestation of one fingerprinted version of `{ds.name}`: fingerprints not "
        "yet attested are batched into an RFC 6962 Merkle tree whose root goes into one signed, "
        "hash-chained ledger entry (`attestations`); each version gets an in-toto/DSSE proof "
        "with its Merkle path, stored in `dataset_proofs` and in the drive under "
        "`reports/attestations/`, with the ledger's signed head (`reports/attestations/heads/`). "
        "With TON_MNEMONIC set, the root is anchored on TON.",
        **common,
    )
    def attestation_asset(
        context: dg.AssetExecutionContext,
        postgres: PostgresResource,
        drive: DriveResource,
        attestation: AttestationResource,
    ) -> dg.MaterializeResult:
        version = context.partition_key
        key = attestation.signer()
        drv = drive.get()
        with (
            postgres.database().connect(autocommit=True) as conn,
            version_lock(conn, ds.name, version),
        ):
            fp = curated_fingerprint(conn, ds.name, version)
            if fp is None:
                raise dg.Failure(
                    description=f"{ds.name} {version} has no fingerprint: materialize "
                    f"provenance/{ds.name}/fingerprint first"
                )
            batch = attest.attest_pending(conn, key)
            doc = attest.proof_of(conn, ds.name, version, fp)
            if doc is None:  # pragma: no cover - attest_pending covers every fingerprint
                raise dg.Failure(description=f"{ds.name} {version}: no proof after attesting")
            to_write = {_key(d): d for d in (batch.proofs if batch else [])}
            to_write[_key(doc)] = doc

            anchorer = attestation.anchorer()
            anchor_error = None
            if anchorer is not None:
                from dynamic_assets.provenance.ton.errors import TonError

                for entry in ledger.unanchored(conn):
                    try:
                        anchor = anchorer.anchor(entry.seq, entry.merkle_root)
                    except TonError as exc:
                        anchor_error = f"entry {entry.seq}: {exc}"
                        break
                    for d in attest.record_anchor(conn, entry.seq, anchor):
                        to_write[_key(d)] = d
            paths = {k: attest.write_proof_file(conn, drv, d) for k, d in to_write.items()}
            doc = to_write[_key(doc)]
            head = attest.publish_head(conn, drv, key)
        entry = doc["ledger_entry"]
        recorded = doc.get("anchor")
        if recorded:
            anchoring = (
                f"TON {recorded['network']} tx {recorded['tx_hash']} (lt {recorded['tx_lt']})"
            )
        elif anchorer is None:
            anchoring = (
                "off: set TON_MNEMONIC (and TON_API_URL / TON_API_KEY) to anchor roots on TON"
            )
        else:
            anchoring = f"failed: {anchor_error}"
        attested_now = batch is not None and any(_key(d) == _key(doc) for d in batch.proofs)
        metadata = {
            "fingerprint": fp,
            "ledger_seq": entry["seq"],
            "entry_hash": entry["entry_hash"],
            "merkle_root": entry["merkle_root"],
            "leaf": f"{doc['merkle']['leaf_index']} of {doc['merkle']['tree_size']}",
            "attested": (
                f"now, in entry {entry['seq']} with {len(batch.proofs)} version(s)"
                if attested_now and batch
                else f"already, in entry {entry['seq']}"
            ),
            "proof_file": paths[_key(doc)],
            "signing_key": f"{key.key_id} ({key.public_key_hex})",
            "anchoring": anchoring,
            "proofs_written": len(paths),
        }
        if head is not None:
            metadata["ledger_head"] = (
                f"{head.tree_size} entries, head {head.head_hash}: "
                f"{attest.head_path(head.tree_size)}"
            )
        if anchorer is not None:
            metadata["ton_wallet"] = f"{anchorer.wallet.address_str} ({anchorer.network})"
        if anchor_error:
            raise dg.Failure(
                description=f"{ds.name} {version} is attested in ledger entry {entry['seq']} and "
                f"its proof is written, but anchoring on TON failed: {anchor_error}",
                metadata=metadata,
            )
        return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(fp))

    return [fingerprint, attestation_asset]


def provenance_defs(decls: Declarations, settings: Settings | None = None) -> dg.Definitions:
    """Fingerprint and attestation assets for every declared dataset, and the attestation
    resource (signing key, TON anchoring) from the settings."""
    settings = settings or Settings.from_env()
    assets = [a for ds in decls.datasets for a in build_provenance_assets(ds)]
    return dg.Definitions(
        assets=assets, resources={"attestation": build_attestation_resource(settings)}
    )
