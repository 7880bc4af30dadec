-- The database's size over time, one row per measurement: written by each lifecycle pass and each
-- `dynamic-assets run` (`source`), read by the weekly review for growth per week and the
-- projected dates of reaching the core budget's warn_at and critical_at. Sizes only, never data.
CREATE TABLE IF NOT EXISTS public.storage_snapshots (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL CHECK (source IN ('lifecycle', 'run')),
    database_bytes bigint NOT NULL CHECK (database_bytes >= 0),
    curated_bytes bigint NOT NULL CHECK (curated_bytes >= 0)
);
CREATE INDEX IF NOT EXISTS storage_snapshots_at ON public.storage_snapshots (at);
