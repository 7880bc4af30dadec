-- A curated version deleted by its lifecycle policy (`delete_after_days`, or its rows'
-- `_retain_until` passed) keeps its registry row: `status` 'deleted', when (`deleted_at`), by
-- which policy (`deletion_policy`) and the signed ledger entry that records it
-- (`deletion_ledger_seq`). Its `platform_locations` lists the tiers that still hold a copy while
-- the deletion is under way; a pass resumes any deletion whose locations are not empty.
ALTER TABLE public.datasets ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
ALTER TABLE public.datasets ADD COLUMN IF NOT EXISTS deletion_policy text;
ALTER TABLE public.datasets ADD COLUMN IF NOT EXISTS deletion_ledger_seq bigint;
ALTER TABLE public.datasets DROP CONSTRAINT IF EXISTS datasets_deleted_check;
ALTER TABLE public.datasets ADD CONSTRAINT datasets_deleted_check
    CHECK (status <> 'deleted' OR (deleted_at IS NOT NULL AND deletion_policy IS NOT NULL));

-- version_states (migration 0006) with the state `deleted`, which comes before all others.
CREATE OR REPLACE VIEW public.version_states AS
WITH files AS (
    SELECT f.dataset, f.version,
           count(*) FILTER (WHERE f.status = 'pending') AS listed,
           count(*) FILTER (WHERE f.status = 'staged') AS staged,
           count(*) FILTER (WHERE f.status = 'quarantined') AS quarantined,
           min(f.updated_at) FILTER (WHERE f.status = 'pending') AS listed_since,
           max(f.updated_at) FILTER (WHERE f.status = 'staged') AS staged_since,
           max(f.updated_at) FILTER (WHERE f.status = 'quarantined') AS quarantined_since,
           min(f.path) FILTER (WHERE f.status = 'quarantined') AS first_refused
      FROM public.onedrive_ingest f
     WHERE f.dataset IS NOT NULL AND f.version IS NOT NULL
       AND f.status IN ('pending', 'staged', 'quarantined')
     GROUP BY f.dataset, f.version
), registered AS (
    SELECT d.name AS dataset, d.version, d.fingerprint, d.curated_at, d.fingerprinted_at,
           p.ledger_seq, p.created_at AS attested_at, p.updated_at AS proof_updated_at,
           a.anchor IS NOT NULL AS anchored,
           d.status = 'deleted' AS deleted, d.deleted_at, d.deletion_policy, d.deletion_ledger_seq
      FROM public.datasets d
      LEFT JOIN public.dataset_proofs p
             ON p.dataset = d.name AND p.version = d.version AND p.fingerprint = d.fingerprint
      LEFT JOIN public.attestations a ON a.seq = p.ledger_seq
     WHERE d.status IN ('curated', 'deleted')
)
SELECT coalesce(r.dataset, f.dataset) AS dataset,
       coalesce(r.version, f.version) AS version,
       CASE
           WHEN r.deleted THEN 'deleted'
           WHEN f.quarantined > 0 THEN 'quarantined'
           WHEN f.listed > 0 THEN 'listed'
           WHEN f.staged > 0 THEN 'staged'
           WHEN r.fingerprint IS NULL THEN 'unfingerprinted'
           WHEN r.ledger_seq IS NULL THEN 'curated'
           WHEN r.anchored THEN 'anchored'
           ELSE 'attested'
       END AS state,
       CASE
           WHEN r.deleted THEN r.deleted_at
           WHEN f.quarantined > 0 THEN f.quarantined_since
           WHEN f.listed > 0 THEN f.listed_since
           WHEN f.staged > 0 THEN f.staged_since
           WHEN r.fingerprint IS NULL THEN r.curated_at
           WHEN r.ledger_seq IS NULL THEN r.fingerprinted_at
           WHEN r.anchored THEN r.proof_updated_at
           ELSE r.attested_at
       END AS since,
       CASE
           WHEN r.deleted THEN
               format('deleted by policy %s (ledger entry %s)', r.deletion_policy,
                      r.deletion_ledger_seq)
           WHEN f.quarantined > 0 THEN
               format('%s file(s) refused (first: %s); waiting for a corrected file',
                      f.quarantined, f.first_refused)
               || CASE WHEN r.dataset IS NOT NULL THEN '; the curated version is kept' ELSE '' END
           WHEN f.listed > 0 THEN format('%s file(s) listed, not staged', f.listed)
           WHEN f.staged > 0 THEN format('%s file(s) staged, not curated', f.staged)
           WHEN r.fingerprint IS NULL THEN 'curated without a fingerprint'
           WHEN r.ledger_seq IS NULL THEN
               format('fingerprint %s… not attested', left(r.fingerprint, 16))
           WHEN r.anchored THEN format('ledger entry %s, anchored on TON', r.ledger_seq)
           ELSE format('ledger entry %s, not anchored', r.ledger_seq)
       END AS detail
  FROM registered r
  FULL JOIN files f ON f.dataset = r.dataset AND f.version = r.version;

-- Read by the pipeline and whoever may read the registry, nobody else.
REVOKE ALL ON public.version_states FROM PUBLIC, anon, authenticated, service_role, dai_trainer, dai_auditor;
GRANT SELECT ON public.version_states TO dai_auditor, service_role;
