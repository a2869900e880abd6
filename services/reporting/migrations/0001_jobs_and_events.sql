-- The system of record: one row per job (its latest known state) and one row per event.

CREATE TABLE jobs (
    id             text PRIMARY KEY,
    image_sha256   text NOT NULL,
    filename       text NOT NULL DEFAULT '',
    state          text NOT NULL CHECK (state IN ('queued', 'succeeded', 'failed')),
    label          text,
    confidence     real,
    -- Every label's probability: {"cloudy": 0.91, "rain": 0.05, ...}
    scores         jsonb,
    model_version  text,
    from_cache     boolean,
    submitted_at   timestamptz NOT NULL,
    finished_at    timestamptz,
    -- Submit-to-finish, in milliseconds; set with finished_at.
    latency_ms     double precision,
    error_message  text,
    failure_kind   text,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_finished_iff_terminal CHECK ((state = 'queued') = (finished_at IS NULL))
);

-- ListJobs: newest first, keyset pagination on (submitted_at, id), optionally by label or state.
CREATE INDEX jobs_submitted_at_id_idx ON jobs (submitted_at DESC, id DESC);
CREATE INDEX jobs_label_submitted_at_id_idx ON jobs (label, submitted_at DESC, id DESC);
CREATE INDEX jobs_state_submitted_at_id_idx ON jobs (state, submitted_at DESC, id DESC);

CREATE TABLE events (
    event_id         text PRIMARY KEY,
    job_id           text NOT NULL REFERENCES jobs (id) DEFERRABLE INITIALLY DEFERRED,
    kind             text NOT NULL CHECK (kind IN ('queued', 'succeeded', 'failed')),
    occurred_at      timestamptz NOT NULL,
    stream_sequence  bigint,
    -- The JobEvent exactly as published (protobuf), for audits and replays.
    payload          bytea NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_job_id_idx ON events (job_id);
