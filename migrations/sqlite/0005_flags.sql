-- Flag challenges: one solve per team and challenge, and every attempt (for the
-- wrong-attempts rate limit and the audit trail; the submitted text is not kept).
CREATE TABLE solves (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    challenge_id INTEGER NOT NULL REFERENCES challenges(id),
    team_id      INTEGER NOT NULL REFERENCES teams(id),
    user_id      INTEGER NOT NULL REFERENCES users(id),
    created_at   INTEGER NOT NULL,
    UNIQUE (challenge_id, team_id)
);

CREATE TABLE flag_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    challenge_id INTEGER NOT NULL REFERENCES challenges(id),
    team_id      INTEGER NOT NULL REFERENCES teams(id),
    user_id      INTEGER NOT NULL REFERENCES users(id),
    correct      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX flag_attempts_team ON flag_attempts(team_id, challenge_id, created_at);
