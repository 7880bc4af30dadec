"""Reading the file formats the drive holds (CSV, JSON, JSONL, Parquet): located errors and
hashing while streaming."""
