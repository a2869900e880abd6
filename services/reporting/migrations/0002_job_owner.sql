-- Jobs belong to their submitter: the subject of the token that submitted the job, empty for
-- an anonymous demo submission (and for jobs recorded before owners existed).

ALTER TABLE jobs ADD COLUMN owner text NOT NULL DEFAULT '';

-- ListJobs for a signed-in viewer: their own jobs, newest first, keyset pagination.
CREATE INDEX jobs_owner_submitted_at_id_idx ON jobs (owner, submitted_at DESC, id DESC);
