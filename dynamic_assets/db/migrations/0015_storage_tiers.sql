-- The storage tier that holds each curated version: `core` (its partition in ai_curated of this
-- database), `main` (a second Postgres) or `archive` (a Parquet file in the drive, named in
-- `platform_locations.archive`). A version moves only after its copy is verified, in one
-- transaction with this row.
ALTER TABLE public.datasets ADD COLUMN IF NOT EXISTS tier text NOT NULL DEFAULT 'core';
ALTER TABLE public.datasets DROP CONSTRAINT IF EXISTS datasets_tier_check;
ALTER TABLE public.datasets ADD CONSTRAINT datasets_tier_check
    CHECK (tier IN ('core', 'main', 'archive'));
