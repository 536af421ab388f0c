-- Submissions, the evaluation job queue, and the all-vs-all evaluation matrix.

-- Every file the spec names (models, eval sets, hidden sets), by relative path ->
-- sha256 in the blob store. Private: no route returns it.
ALTER TABLE challenges ADD COLUMN artifacts TEXT NOT NULL DEFAULT '{}';

CREATE TABLE submissions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    challenge_id  INTEGER NOT NULL REFERENCES challenges(id),
    team_id       INTEGER NOT NULL REFERENCES teams(id),
    user_id       INTEGER NOT NULL REFERENCES users(id),
    track         TEXT    NOT NULL CHECK (track IN ('attack', 'defense')),
    blob_sha256   TEXT    NOT NULL,
    filename      TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'scored', 'rejected', 'failed')),
    message       TEXT    NOT NULL DEFAULT '',
    gate_accuracy REAL,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX submissions_team ON submissions(team_id, challenge_id, track, created_at);
CREATE INDEX submissions_challenge ON submissions(challenge_id, track, status);

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id    INTEGER NOT NULL REFERENCES submissions(id),
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    run_after        INTEGER NOT NULL,
    last_error       TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL
);
CREATE INDEX jobs_ready ON jobs(state, run_after);

-- One cell of the matrix: how many of `total` inputs of `split` the attacker
-- fooled the defender on. attacker: 'sub:<id>' | 'ref:<name>';
-- defender: 'sub:<id>' | 'org:<target name>'.
CREATE TABLE evaluations (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    challenge_id INTEGER NOT NULL REFERENCES challenges(id),
    attacker     TEXT    NOT NULL,
    defender     TEXT    NOT NULL,
    split        TEXT    NOT NULL CHECK (split IN ('public', 'private')),
    total        INTEGER NOT NULL,
    fooled       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (challenge_id, attacker, defender, split)
);
