-- Which curated version of each dataset is current, and every move of that pointer.
CREATE TABLE IF NOT EXISTS public.dataset_pointers (
    dataset text PRIMARY KEY,
    version text NOT NULL,
    moved_at timestamptz NOT NULL DEFAULT now(),
    moved_by text NOT NULL
);

CREATE TABLE IF NOT EXISTS public.dataset_pointer_moves (
    id bigserial PRIMARY KEY,
    dataset text NOT NULL,
    action text NOT NULL CHECK (action IN ('promote', 'rollback')),
    from_version text,
    to_version text NOT NULL,
    fingerprint text NOT NULL,
    actor text NOT NULL,
    reason text,
    moved_at timestamptz NOT NULL DEFAULT now(),
    ledger_seq bigint
);
CREATE INDEX IF NOT EXISTS dataset_pointer_moves_dataset_idx
    ON public.dataset_pointer_moves (dataset, id);

-- The history is append-only: a move is never changed or removed.
CREATE OR REPLACE FUNCTION public.dataset_pointer_moves_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'the pointer history is append-only: it cannot be truncated';
    END IF;
    RAISE EXCEPTION 'the pointer history is append-only: move % cannot be changed or deleted', OLD.id;
END
$$;

DROP TRIGGER IF EXISTS dataset_pointer_moves_append_only_row ON public.dataset_pointer_moves;
CREATE TRIGGER dataset_pointer_moves_append_only_row
    BEFORE UPDATE OR DELETE ON public.dataset_pointer_moves
    FOR EACH ROW EXECUTE FUNCTION public.dataset_pointer_moves_append_only();

DROP TRIGGER IF EXISTS dataset_pointer_moves_append_only_truncate ON public.dataset_pointer_moves;
CREATE TRIGGER dataset_pointer_moves_append_only_truncate
    BEFORE TRUNCATE ON public.dataset_pointer_moves
    FOR EACH STATEMENT EXECUTE FUNCTION public.dataset_pointer_moves_append_only();
