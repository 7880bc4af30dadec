-- Provenance: fingerprint records on the registry, per-version proofs, and an append-only ledger.

-- The fingerprint (spec v1, docs/fingerprint.md) of each curated version, with the record it is
-- the hash of, so that `verify` can recompute and compare each part.
ALTER TABLE public.datasets ADD COLUMN IF NOT EXISTS content_digest text;
ALTER TABLE public.datasets ADD COLUMN IF NOT EXISTS fingerprint_record jsonb;
ALTER TABLE public.datasets ADD COLUMN IF NOT EXISTS fingerprinted_at timestamptz;

-- One proof per (dataset, version, fingerprint): the in-toto Statement in a DSSE envelope, the
-- Merkle audit path and the ledger entry (and its TON anchor once confirmed), as written to the
-- drive under reports/attestations/.
CREATE TABLE IF NOT EXISTS public.dataset_proofs (
    id          bigserial PRIMARY KEY,
    dataset     text NOT NULL,
    version     text NOT NULL,
    fingerprint text NOT NULL,
    ledger_seq  bigint NOT NULL REFERENCES public.attestations (seq),
    leaf_index  integer NOT NULL,
    tree_size   integer NOT NULL,
    proof       jsonb NOT NULL,
    drive_path  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset, version, fingerprint)
);
CREATE INDEX IF NOT EXISTS dataset_proofs_version_idx ON public.dataset_proofs (dataset, version);
CREATE INDEX IF NOT EXISTS dataset_proofs_seq_idx ON public.dataset_proofs (ledger_seq);

-- The ledger is append-only: hashed columns never change, rows are never deleted, and the TON
-- anchor is set once. (A superuser can still bypass triggers; `verify` detects that.)
CREATE OR REPLACE FUNCTION public.attestations_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the attestations ledger is append-only: entry % cannot be deleted', OLD.seq;
    ELSIF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'the attestations ledger is append-only: it cannot be truncated';
    END IF;
    IF (NEW.seq, NEW.prev_hash, NEW.entry_hash, NEW.merkle_root, NEW.leaves, NEW.created_at,
        NEW.public_key, NEW.signature)
       IS DISTINCT FROM
       (OLD.seq, OLD.prev_hash, OLD.entry_hash, OLD.merkle_root, OLD.leaves, OLD.created_at,
        OLD.public_key, OLD.signature) THEN
        RAISE EXCEPTION 'the attestations ledger is append-only: entry % cannot be changed', OLD.seq;
    END IF;
    IF OLD.anchor IS NOT NULL AND NEW.anchor IS DISTINCT FROM OLD.anchor THEN
        RAISE EXCEPTION 'entry % is already anchored; its anchor cannot be changed', OLD.seq;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS attestations_append_only_row ON public.attestations;
CREATE TRIGGER attestations_append_only_row
    BEFORE UPDATE OR DELETE ON public.attestations
    FOR EACH ROW EXECUTE FUNCTION public.attestations_append_only();

DROP TRIGGER IF EXISTS attestations_append_only_truncate ON public.attestations;
CREATE TRIGGER attestations_append_only_truncate
    BEFORE TRUNCATE ON public.attestations
    FOR EACH STATEMENT EXECUTE FUNCTION public.attestations_append_only();
