"""The demo: its declarations (`datasets.yaml`) and a seeded drive of synthetic data (`seed`),
generated per dataset by `market`, `corpus` and `embeddings` from what `generate` shares."""
