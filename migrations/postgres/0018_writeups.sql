-- Teams' own write-ups of a challenge (issue 13): one per team, published
-- with the challenge's solution once its tracks close or it is revealed.
CREATE TABLE writeups (
    challenge_id BIGINT NOT NULL REFERENCES challenges(id),
    team_id      BIGINT NOT NULL REFERENCES teams(id),
    user_id      BIGINT NOT NULL REFERENCES users(id),
    body         TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (challenge_id, team_id)
);
