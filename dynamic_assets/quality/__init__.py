"""Data quality: declared Great Expectations checks, schema drift and dataset health."""
