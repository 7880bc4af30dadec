"""Storage tiers: how full core is (`usage`), what the next pass moves and why (`plan`), a
curated version streamed to Parquet in the drive, verified, then dropped from core, read in
place and restored (`archive`), and one pass over the plan (`run`)."""
