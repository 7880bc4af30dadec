-- The content digest of a built typed table, computed while the expectations judge it: the
-- curated step's fingerprint takes it instead of reading the table again. `digest_columns`
-- names the declared columns it was computed over (a digest of their canonical record), so a
-- declaration changed since is never answered with an old digest.
ALTER TABLE public.curated_builds
    ADD COLUMN IF NOT EXISTS content_rows bigint,
    ADD COLUMN IF NOT EXISTS content_digest text,
    ADD COLUMN IF NOT EXISTS digest_columns text;
