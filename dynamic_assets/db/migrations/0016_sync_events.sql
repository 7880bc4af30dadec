-- What the drive's sync met, recorded where it happened: a Graph request answered 429 or 503 and
-- retried after `seconds` (`throttled`), a delta link that expired with `410 Gone` and an
-- enumeration started over (`resync_410`), a quota reading (`quota`). `detail` holds the HTTP
-- status and Graph's error code or the quota's figures; never a URL's query, a token or a value.
CREATE TABLE IF NOT EXISTS public.sync_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL CHECK (kind IN ('throttled', 'resync_410', 'quota')),
    drive text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb,
    seconds double precision
);
CREATE INDEX IF NOT EXISTS sync_events_at ON public.sync_events (at);
