"""Mirrors of curated versions on the team's other platforms (S3-compatible stores, DVC)."""
