"""dynamic_assets: OneDrive files to validated, curated, fingerprinted Postgres tables, in Dagster."""

__version__ = "0.1.0"
