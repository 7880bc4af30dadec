-- Observed source schema of each staged version (for the schema-change check).
CREATE TABLE IF NOT EXISTS public.version_schemas (
    dataset     text NOT NULL,
    version     text NOT NULL,
    columns     jsonb NOT NULL,
    observed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, version)
);
