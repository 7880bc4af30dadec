"""Alerts: signed webhook events on failed checks and runs, quarantined files, stale datasets and
confirmed attestations (the plain core is `dynamic_assets.alerts`)."""
