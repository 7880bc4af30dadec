-- How long the blocking checks of a staged version took (the typed table's build when it was not
-- built beside the staging, the schema observed, the expectations, the content digest taken
-- meanwhile), on the staging step's row beside its own duration.
ALTER TABLE public.etl_runs ADD COLUMN IF NOT EXISTS checks_s double precision;
