-- Black-box queries spent per team and target ('org:<name>' or 'sub:<id>').
CREATE TABLE query_usage (
    challenge_id INTEGER NOT NULL REFERENCES challenges(id),
    team_id      INTEGER NOT NULL REFERENCES teams(id),
    target       TEXT    NOT NULL,
    used         INTEGER NOT NULL,
    PRIMARY KEY (challenge_id, team_id, target)
);
