"""Mirror assets: `mirrors/<dataset>/<platform>` for every declared dataset and S3 platform,
partitioned by version like the dataset, downstream of `provenance/<dataset>/fingerprint`.

Each materialization exports the curated version as Parquet and puts it in the platform's bucket
(`dynamic_assets.mirrors.publish.mirror_version`); it uploads nothing when the object already
holds those bytes. Credentials come from the environment of the run (`<PLATFORM>_ACCESS_KEY_ID`
/ `<PLATFORM>_SECRET_ACCESS_KEY`, else `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`).
"""

import dagster as dg

from dynamic_assets.declarations.model import Dataset, Declarations
from dynamic_assets.declarations.platforms import S3Platform
from dynamic_assets.defs.datasets.asset_args import dataset_asset_args
from dynamic_assets.defs.provenance.keys import fingerprint_key
from dynamic_assets.defs.provenance.resources import AttestationResource
from dynamic_assets.defs.resources import PostgresResource
from dynamic_assets.mirrors.publish import mirror_version
from dynamic_assets.mirrors.s3 import MirrorError

MIRROR_CODE_VERSION = "1"


def mirror_key(dataset: str, platform: str) -> dg.AssetKey:
    return dg.AssetKey(["mirrors", dataset, platform])


def s3_platforms(decls: Declarations) -> list[str]:
    return [n for n, p in decls.platforms.items() if isinstance(p, S3Platform)]


def build_mirror_asset(ds: Dataset, decls: Declarations, platform: str) -> dg.AssetsDefinition:
    declared = decls.platforms[platform]
    assert isinstance(declared, S3Platform)

    @dg.asset(
        key=mirror_key(ds.name, platform),
        deps=[fingerprint_key(ds.name)],
        kinds={"s3", "parquet"},
        code_version=MIRROR_CODE_VERSION,
        description=f"`{ds.name}` mirrored to `{platform}` "
        f"(s3://{declared.bucket}/{declared.prefix}/{ds.name}/<version>/): the curated version "
        "as Parquet named by its fingerprint, the `latest` pointer, and the object's location, "
        "SHA-256 and size in `datasets.platform_locations`.",
        **dataset_asset_args(ds),
    )
    def mirror(
        context: dg.AssetExecutionContext,
        postgres: PostgresResource,
        attestation: AttestationResource,
    ) -> dg.MaterializeResult:
        version = context.partition_key
        try:
            done = mirror_version(
                postgres.database(),
                decls,
                ds.name,
                version,
                platform,
                signer=attestation.signer(),
            )
        except MirrorError as exc:
            raise dg.Failure(
                description=str(exc),
                metadata={"dataset": ds.name, "version": version, "platform": platform},
            ) from None
        return dg.MaterializeResult(
            metadata={
                "location": dg.MetadataValue.url(done.placed.url),
                "sha256": done.placed.sha256,
                "bytes": done.placed.size_bytes,
                "dagster/row_count": done.rows,
                "uploaded": done.placed.uploaded,
                "latest_moved": done.latest_moved,
            },
        )

    return mirror


def mirrors_defs(decls: Declarations) -> dg.Definitions:
    """One mirror asset per declared dataset and S3 platform."""
    return dg.Definitions(
        assets=[
            build_mirror_asset(ds, decls, p) for ds in decls.datasets for p in s3_platforms(decls)
        ]
    )
