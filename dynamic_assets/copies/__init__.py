"""A curated version as a Parquet copy (`export`), and a Parquet copy loaded back and checked
against its fingerprint (`load`): what the mirrors and the archive tier both write and read."""
