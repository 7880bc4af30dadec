"""The Dagster shell of the mirrors: one asset per dataset and platform."""
