-- Teams' own write-ups of a challenge (issue 13): one per team, published
-- with the challenge's solution once its tracks close or it is revealed.
CREATE TABLE writeups (
    challenge_id INTEGER NOT NULL REFERENCES challenges(id),
    team_id      INTEGER NOT NULL REFERENCES teams(id),
    user_id      INTEGER NOT NULL REFERENCES users(id),
    body         TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (challenge_id, team_id)
);
