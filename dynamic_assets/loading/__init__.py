"""Loading: files streamed from the drive into `ai_raw` staging, then promoted to `ai_curated`."""
