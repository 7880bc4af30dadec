"""One dataset version's way from drive files to curated: the steps (`pipeline`), the registry rows
(`registry`), COPY into staging (`staging`) and the typed curated partition (`curated`)."""
