"""Declarations: the YAML model of datasets and models (`model`), its identifier and version rules
(`names`), and inference of a declaration from sample files (`infer`)."""
