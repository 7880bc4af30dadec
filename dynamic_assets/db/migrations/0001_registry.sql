-- Schemas, pgvector, and the registry tables of the training datastore.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS ai_raw;
CREATE SCHEMA IF NOT EXISTS ai_curated;

-- One row per dataset version that reached curated.
CREATE TABLE IF NOT EXISTS public.datasets (
    id                 bigserial PRIMARY KEY,
    name               text NOT NULL,
    version            text NOT NULL,
    description        text,
    file_path          text,
    platform_locations jsonb NOT NULL DEFAULT '{}'::jsonb,
    checksum           text,
    size_bytes         bigint,
    row_count          bigint,
    file_count         integer,
    tags               text[] NOT NULL DEFAULT '{}',
    is_public          boolean NOT NULL DEFAULT false,
    sensitivity        text NOT NULL DEFAULT 'internal',
    schema_version     integer NOT NULL DEFAULT 1,
    schema             jsonb,
    fingerprint        text,
    status             text NOT NULL DEFAULT 'curated',
    curated_at         timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

CREATE TABLE IF NOT EXISTS public.models (
    id                   bigserial PRIMARY KEY,
    name                 text NOT NULL,
    version              text NOT NULL,
    dataset_id           bigint REFERENCES public.datasets (id),
    framework            text,
    performance_metrics  jsonb NOT NULL DEFAULT '{}'::jsonb,
    deployment_locations jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

CREATE TABLE IF NOT EXISTS public.experiments (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL,
    dataset_version text,
    model_version   text,
    parameters      jsonb NOT NULL DEFAULT '{}'::jsonb,
    results         jsonb NOT NULL DEFAULT '{}'::jsonb,
    git_commit      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per source file content seen in the drive (a changed file gets a new row).
CREATE TABLE IF NOT EXISTS public.onedrive_ingest (
    id             bigserial PRIMARY KEY,
    dataset        text,
    version        text,
    drive_item_id  text NOT NULL,
    path           text NOT NULL,
    name           text NOT NULL,
    file_format    text,
    size_bytes     bigint,
    sha256         text,
    quick_xor_hash text,
    etag           text NOT NULL,
    ctag           text,
    modified_at    timestamptz,
    modified_by    text,
    status         text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'staged', 'curated', 'quarantined', 'undeclared', 'ignored', 'deleted', 'superseded')),
    error          text,
    rows_loaded    bigint,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (drive_item_id, etag)
);
CREATE INDEX IF NOT EXISTS onedrive_ingest_version_idx ON public.onedrive_ingest (dataset, version);
CREATE INDEX IF NOT EXISTS onedrive_ingest_path_idx ON public.onedrive_ingest (path);

-- One row per pipeline step over a dataset version.
CREATE TABLE IF NOT EXISTS public.etl_runs (
    id            bigserial PRIMARY KEY,
    run_id        text,
    dataset       text NOT NULL,
    version       text NOT NULL,
    step          text NOT NULL,
    files         integer,
    rows_loaded   bigint,
    rows_rejected bigint,
    bytes         bigint,
    checks        jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL,
    error         text,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    duration_s    double precision
);
CREATE INDEX IF NOT EXISTS etl_runs_version_idx ON public.etl_runs (dataset, version, started_at);

-- The append-only attestation ledger (hash-chained, signed entries).
CREATE TABLE IF NOT EXISTS public.attestations (
    seq          bigint PRIMARY KEY,
    prev_hash    text NOT NULL,
    entry_hash   text NOT NULL UNIQUE,
    merkle_root  text NOT NULL,
    leaves       jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    public_key   text NOT NULL,
    signature    text NOT NULL,
    anchor       jsonb
);
