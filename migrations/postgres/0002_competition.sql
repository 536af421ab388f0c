-- Submissions, the evaluation job queue, and the all-vs-all evaluation matrix.

-- Every file the spec names (models, eval sets, hidden sets), by relative path ->
-- sha256 in the blob store. Private: no route returns it.
ALTER TABLE challenges ADD COLUMN artifacts TEXT NOT NULL DEFAULT '{}';

CREATE TABLE submissions (
    id            BIGSERIAL PRIMARY KEY,
    challenge_id  BIGINT NOT NULL REFERENCES challenges(id),
    team_id       BIGINT NOT NULL REFERENCES teams(id),
    user_id       BIGINT NOT NULL REFERENCES users(id),
    track         TEXT    NOT NULL CHECK (track IN ('attack', 'defense')),
    blob_sha256   TEXT    NOT NULL,
    filename      TEXT    NOT NULL,
    size          BIGINT NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'scored', 'rejected', 'failed')),
    message       TEXT    NOT NULL DEFAULT '',
    gate_accuracy DOUBLE PRECISION,
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX submissions_team ON submissions(team_id, challenge_id, track, created_at);
CREATE INDEX submissions_challenge ON submissions(challenge_id, track, status);

CREATE TABLE jobs (
    id               BIGSERIAL PRIMARY KEY,
    submission_id    BIGINT NOT NULL REFERENCES submissions(id),
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    run_after        BIGINT NOT NULL,
    last_error       TEXT    NOT NULL DEFAULT '',
    created_at       BIGINT NOT NULL
);
CREATE INDEX jobs_ready ON jobs(state, run_after);

-- One cell of the matrix: how many of `total` inputs of `split` the attacker
-- fooled the defender on. attacker: 'sub:<id>' | 'ref:<name>';
-- defender: 'sub:<id>' | 'org:<target name>'.
CREATE TABLE evaluations (
    id           BIGSERIAL PRIMARY KEY,
    challenge_id BIGINT NOT NULL REFERENCES challenges(id),
    attacker     TEXT    NOT NULL,
    defender     TEXT    NOT NULL,
    split        TEXT    NOT NULL CHECK (split IN ('public', 'private')),
    total        BIGINT NOT NULL,
    fooled       BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (challenge_id, attacker, defender, split)
);
