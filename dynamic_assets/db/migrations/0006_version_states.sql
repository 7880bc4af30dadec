-- The state of every dataset version, derived from the records (never stored a second time):
--
--   listed           files recorded in onedrive_ingest, not all staged yet
--   quarantined      a file refused: the version waits for a corrected file
--   staged           every file staged, the version not curated from them yet
--   unfingerprinted  curated (registered in `datasets`) without its fingerprint: an older
--                    install, or a crash between the swap and the fingerprint
--   curated          curated and fingerprinted, the fingerprint not attested
--   attested         a proof (`dataset_proofs`) for its current fingerprint
--   anchored         that proof's ledger entry anchored on TON
--
-- A version's files decide first (a curated version whose drive folder holds files not curated
-- yet is on its way again); otherwise its registry row does. The final state is `anchored` when
-- TON anchoring is configured, else `attested` (the configuration is not in the database:
-- dynamic_assets.quality.states decides which states are final).
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
           a.anchor IS NOT NULL AS anchored
      FROM public.datasets d
      LEFT JOIN public.dataset_proofs p
             ON p.dataset = d.name AND p.version = d.version AND p.fingerprint = d.fingerprint
      LEFT JOIN public.attestations a ON a.seq = p.ledger_seq
     WHERE d.status = 'curated'
)
SELECT coalesce(r.dataset, f.dataset) AS dataset,
       coalesce(r.version, f.version) AS version,
       CASE
           WHEN f.quarantined > 0 THEN 'quarantined'
           WHEN f.listed > 0 THEN 'listed'
           WHEN f.staged > 0 THEN 'staged'
           WHEN r.fingerprint IS NULL THEN 'unfingerprinted'
           WHEN r.ledger_seq IS NULL THEN 'curated'
           WHEN r.anchored THEN 'anchored'
           ELSE 'attested'
       END AS state,
       CASE
           WHEN f.quarantined > 0 THEN f.quarantined_since
           WHEN f.listed > 0 THEN f.listed_since
           WHEN f.staged > 0 THEN f.staged_since
           WHEN r.fingerprint IS NULL THEN r.curated_at
           WHEN r.ledger_seq IS NULL THEN r.fingerprinted_at
           WHEN r.anchored THEN r.proof_updated_at
           ELSE r.attested_at
       END AS since,
       CASE
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
