-- Training: the checkpoint folders seen in the drive's model-checkpoints/, traceable or not.

-- One row per run folder (model-checkpoints/<model>/<run-id>/): registered when its metadata.json
-- is valid and names a fingerprint the registry knows; otherwise the reason it cannot be traced
-- to curated data, for auditors.
CREATE TABLE IF NOT EXISTS public.model_checkpoints (
    id               bigserial PRIMARY KEY,
    path             text NOT NULL UNIQUE,
    model            text NOT NULL,
    run_id           text NOT NULL,
    status           text NOT NULL
        CHECK (status IN ('registered', 'missing_metadata', 'invalid_metadata', 'unknown_fingerprint')),
    problem          text,
    dataset          text,
    dataset_version  text,
    data_fingerprint text,
    model_id         bigint REFERENCES public.models (id),
    listing_digest   text,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    checked_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS model_checkpoints_status_idx ON public.model_checkpoints (status);

-- The retrain guard looks models up by the data fingerprint they were trained on.
CREATE INDEX IF NOT EXISTS models_data_fingerprint_idx
    ON public.models ((metadata->>'data_fingerprint'), name);
