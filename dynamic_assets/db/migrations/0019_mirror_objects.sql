-- Every object a mirror holds, recorded once when first placed: platform, key, SHA-256, size,
-- the fingerprint of the version it carries, the store's ETag (to see a change behind our back
-- without downloading) and the ledger entry that records it. Placing the same bytes again
-- records nothing.
CREATE TABLE IF NOT EXISTS public.mirror_objects (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform text NOT NULL,
    dataset text NOT NULL,
    version text NOT NULL,
    object_key text NOT NULL,
    sha256 text NOT NULL,
    size_bytes bigint NOT NULL,
    fingerprint text NOT NULL,
    etag text,
    ledger_seq bigint,
    mirrored_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, object_key, sha256)
);
CREATE INDEX IF NOT EXISTS mirror_objects_version
    ON public.mirror_objects (dataset, version, platform);

-- The last failure of a version's mirror on a platform, with its reason (platform, dataset and
-- version named; no credential, no server text); removed when the mirror next succeeds.
CREATE TABLE IF NOT EXISTS public.mirror_failures (
    platform text NOT NULL,
    dataset text NOT NULL,
    version text NOT NULL,
    reason text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, dataset, version)
);

-- The curated versions a caller may read (0002), with `pointed`: true for the version the
-- dataset's pointer names (`promote` / `rollback`), so that a REST reader follows the current
-- version as the database path does. The filter is unchanged.
CREATE OR REPLACE VIEW public.curated_versions WITH (security_barrier = true) AS
SELECT d.name, d.version, d.row_count, d.schema_version, d.schema, d.sensitivity,
       d.fingerprint, d.curated_at,
       EXISTS (SELECT 1 FROM public.dataset_pointers p
                WHERE p.dataset = d.name AND p.version = d.version) AS pointed
  FROM public.datasets d
 WHERE d.status = 'curated'
   AND to_regclass(format('ai_curated.%I', d.name)) IS NOT NULL
   AND has_table_privilege(current_user, to_regclass(format('ai_curated.%I', d.name)), 'SELECT');
