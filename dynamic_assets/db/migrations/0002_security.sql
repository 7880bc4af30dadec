-- Security: database roles, who may read what, and the log of webhook deliveries.
--
-- Roles are cluster-wide, so they are created only if missing (one server holds many databases,
-- and Supabase already has anon, authenticated and service_role); everything else here is
-- per database and idempotent. The pipeline's role (whoever applies the migrations and owns the
-- tables) is the only one that writes. Per-dataset grants and row level security policies on
-- `ai_curated.<dataset>` come from each declaration's sensitivity (dynamic_assets/security.py).
--
--   anon           Supabase's role for requests without a user: public datasets only
--   authenticated  Supabase's role for signed-in users: public datasets only
--   service_role   Supabase's service key: every curated dataset, reads the registry
--   dai_trainer    model training: public and internal datasets
--   dai_auditor    audits: the registry, ingest and run records, attestations, proofs and
--                  deliveries; public and internal datasets (to recompute digests); never
--                  sensitive rows, never staging

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role', 'dai_trainer', 'dai_auditor'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- created at the same moment by the migration of another database
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'role % does not exist and % may not create roles', r, current_user
                        USING HINT = format('create it once as an administrator: CREATE ROLE %I NOLOGIN;', r);
            END;
        END IF;
    END LOOP;
END
$$;

-- On Supabase, PostgREST logs in as `authenticator` and switches to the role named in the
-- request's JWT: let it switch to the project's roles too (a key whose role claim is dai_trainer).
DO $$
DECLARE
    r text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticator') THEN
        FOREACH r IN ARRAY ARRAY['dai_trainer', 'dai_auditor'] LOOP
            IF NOT pg_catalog.pg_has_role('authenticator', r, 'MEMBER') THEN
                BEGIN
                    EXECUTE format('GRANT %I TO authenticator', r);
                EXCEPTION WHEN insufficient_privilege OR duplicate_object OR unique_violation THEN
                    RAISE NOTICE 'could not grant % to authenticator: grant it as an administrator '
                                 'for REST access with that role', r;
                END;
            END IF;
        END LOOP;
    END IF;
END
$$;

-- Staging is the pipeline's alone: no schema usage, no table access, now or for tables to come.
REVOKE ALL ON SCHEMA ai_raw FROM PUBLIC, anon, authenticated, service_role, dai_trainer, dai_auditor;
REVOKE ALL ON ALL TABLES IN SCHEMA ai_raw FROM PUBLIC, anon, authenticated, service_role, dai_trainer, dai_auditor;
ALTER DEFAULT PRIVILEGES IN SCHEMA ai_raw
    REVOKE ALL ON TABLES FROM PUBLIC, anon, authenticated, service_role, dai_trainer, dai_auditor;

-- Curated: every role may look into the schema; which tables it reads is decided per dataset.
-- A new table (a dataset's parent, or a version's partition being built) starts with no grants.
REVOKE CREATE ON SCHEMA ai_curated FROM PUBLIC, anon, authenticated, service_role, dai_trainer, dai_auditor;
GRANT USAGE ON SCHEMA ai_curated TO anon, authenticated, service_role, dai_trainer, dai_auditor;
ALTER DEFAULT PRIVILEGES IN SCHEMA ai_curated
    REVOKE ALL ON TABLES FROM PUBLIC, anon, authenticated, service_role, dai_trainer, dai_auditor;

-- Every alert sent to a webhook endpoint, one row per (event, endpoint): the outbox that the
-- alert sensors deliver from and retry with backoff. The endpoint is stored redacted (scheme, host,
-- port and a hash of the full URL, which may carry a token); the secret is never stored.
CREATE TABLE IF NOT EXISTS public.webhook_deliveries (
    id               bigserial PRIMARY KEY,
    delivery_id      text NOT NULL UNIQUE,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    dataset          text,
    version          text,
    endpoint         text NOT NULL,
    endpoint_hash    text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'retrying', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    latency_ms       double precision,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (event_id, endpoint_hash)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx
    ON public.webhook_deliveries (next_attempt_at) WHERE status IN ('pending', 'retrying');

-- The registry tables: the pipeline writes, dai_auditor and service_role read, nobody else
-- (Supabase grants anon and authenticated everything on new tables in `public` by default, which
-- would put the registry on the REST API). "Registry" is every table in `public` that the
-- pipeline's role owns and that has no row level security: the tables of this and later
-- migrations, whatever they are called; a table with row level security on is someone's
-- deliberate exposure through Supabase (another app sharing the project) and is left alone.
-- A function, so that tables added by later migrations are covered too: it runs here and after
-- every migration run (dynamic_assets.security.secure_registry). It changes only what differs.
CREATE OR REPLACE FUNCTION public.dai_secure_registry() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    rel regclass;
    seq regclass;
    changed integer := 0;
BEGIN
    FOR rel IN
        SELECT c.oid::regclass FROM pg_catalog.pg_class c
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
           AND NOT c.relrowsecurity AND NOT c.relispartition
           AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
         ORDER BY c.relname
    LOOP
        IF EXISTS (
            SELECT 1 FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = rel AND a.grantee <> c.relowner
               AND NOT (a.privilege_type = 'SELECT' AND a.grantee IN (
                        SELECT oid FROM pg_catalog.pg_roles WHERE rolname IN ('dai_auditor', 'service_role'))))
           OR NOT has_table_privilege('dai_auditor', rel, 'SELECT')
           OR NOT has_table_privilege('service_role', rel, 'SELECT')
        THEN
            EXECUTE format('REVOKE ALL ON %s FROM PUBLIC, anon, authenticated, service_role, dai_trainer, dai_auditor', rel);
            EXECUTE format('GRANT SELECT ON %s TO dai_auditor, service_role', rel);
            changed := changed + 1;
        END IF;
        FOR seq IN
            SELECT d.objid::regclass FROM pg_catalog.pg_depend d
             WHERE d.refobjid = rel AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
               AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) = 'S'
        LOOP
            IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c, aclexplode(c.relacl) a
                        WHERE c.oid = seq AND a.grantee <> c.relowner) THEN
                EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC, anon, authenticated, service_role, dai_trainer, dai_auditor', seq);
                changed := changed + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN changed;
END
$$;
REVOKE ALL ON FUNCTION public.dai_secure_registry() FROM PUBLIC, anon, authenticated, service_role, dai_trainer, dai_auditor;

SELECT public.dai_secure_registry();

-- The curated versions a caller may read, with their declared columns: what a trainer needs to
-- find a version and rebuild its types (Supabase REST, `read_curated(..., via="rest")`). A row
-- shows only if the caller may SELECT that dataset's curated table, so a key never learns even
-- the name of a dataset it may not read. (The view reads the registry with its owner's rights;
-- `current_user` is the caller; security_barrier keeps the filter ahead of caller functions.)
CREATE OR REPLACE VIEW public.curated_versions WITH (security_barrier = true) AS
SELECT d.name, d.version, d.row_count, d.schema_version, d.schema, d.sensitivity,
       d.fingerprint, d.curated_at
  FROM public.datasets d
 WHERE d.status = 'curated'
   AND to_regclass(format('ai_curated.%I', d.name)) IS NOT NULL
   AND has_table_privilege(current_user, to_regclass(format('ai_curated.%I', d.name)), 'SELECT');
-- (Read only for everyone: the view is simple enough to be updatable, and Supabase's default
-- privileges would otherwise let anon write the registry through it.)
REVOKE ALL ON public.curated_versions FROM PUBLIC, anon, authenticated, service_role, dai_trainer, dai_auditor;
-- Everyone may query it (a dataset's extra readers too): each sees only what it may read.
GRANT SELECT ON public.curated_versions TO PUBLIC;
