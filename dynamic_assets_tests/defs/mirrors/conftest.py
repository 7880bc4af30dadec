"""The mirror tests' S3 server and declarations, for the asset tests too."""

from dynamic_assets_tests.mirrors.conftest import mirror_decls, s3  # noqa: F401
