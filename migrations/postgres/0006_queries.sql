-- Black-box queries spent per team and target ('org:<name>' or 'sub:<id>').
CREATE TABLE query_usage (
    challenge_id BIGINT NOT NULL REFERENCES challenges(id),
    team_id      BIGINT NOT NULL REFERENCES teams(id),
    target       TEXT    NOT NULL,
    used         BIGINT NOT NULL,
    PRIMARY KEY (challenge_id, team_id, target)
);
