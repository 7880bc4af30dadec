from dynamic_assets_tests.support.tiers import curated, tier_decls

__all__ = ["curated", "tier_decls"]
