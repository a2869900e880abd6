-- Feedback on a job's answer: the submitter says which label the photo really shows. One row
-- per job, the latest feedback: a later one (higher stream sequence, the order the broker
-- accepted them in; then given_at, then event id) replaces an earlier one, whatever order the
-- events are recorded in. Every feedback event is also kept in `events`, as every event is.

ALTER TABLE events DROP CONSTRAINT events_kind_check;
ALTER TABLE events ADD CONSTRAINT events_kind_check
    CHECK (kind IN ('queued', 'succeeded', 'failed', 'feedback'));

CREATE TABLE job_feedback (
    job_id           text PRIMARY KEY
                     REFERENCES jobs (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    actual_label     text NOT NULL,
    given_at         timestamptz NOT NULL,
    event_id         text NOT NULL,
    stream_sequence  bigint NOT NULL
);

-- GetQuality: the answered jobs of a window, with what the figures need, from the index alone;
-- each then finds its feedback by primary key.
CREATE INDEX jobs_answered_submitted_at_idx ON jobs (submitted_at)
    INCLUDE (id, model_version, label, confidence) WHERE state = 'succeeded';
