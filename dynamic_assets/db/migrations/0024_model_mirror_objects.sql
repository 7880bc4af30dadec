-- A mirrored model checkpoint is recorded in `mirror_objects` like a dataset's object, with the
-- model and run it belongs to; `dataset`, `version` and `fingerprint` then name the data the run
-- was trained on. Both stay NULL for a dataset's object.
ALTER TABLE public.mirror_objects
    ADD COLUMN IF NOT EXISTS model text,
    ADD COLUMN IF NOT EXISTS run_id text;
CREATE INDEX IF NOT EXISTS mirror_objects_model
    ON public.mirror_objects (model, run_id, platform) WHERE model IS NOT NULL;
