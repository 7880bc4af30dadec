"""The demo: its declarations (`datasets.yaml`) and a seeded drive of synthetic data (`seed`)."""
