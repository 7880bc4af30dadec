"""The weekly review as an asset on a weekly schedule (the plain core is
`dynamic_assets.reports`)."""
