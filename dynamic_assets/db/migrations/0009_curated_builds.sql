-- The typed table built for a version from its staging, before it becomes the version's curated
-- partition: the staging step builds and checks it, the curated step fingerprints it and swaps
-- it in. Each row names the table in `ai_curated` and what it was built from (the ids of the
-- staged files and the rows), so that a table built from other files is never swapped in.
CREATE TABLE IF NOT EXISTS public.curated_builds (
    dataset    text NOT NULL,
    version    text NOT NULL,
    table_name text NOT NULL,
    file_ids   bigint[] NOT NULL,
    rows       bigint NOT NULL,
    built_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, version)
);
