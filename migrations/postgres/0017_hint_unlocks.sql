-- Hints a team unlocked (issue 13), at the cost it paid then: the cost comes
-- off the team's event score. One row per team, challenge and hint.
CREATE TABLE hint_unlocks (
    challenge_id BIGINT NOT NULL REFERENCES challenges(id),
    team_id      BIGINT NOT NULL REFERENCES teams(id),
    hint_id      BIGINT NOT NULL,
    user_id      BIGINT NOT NULL REFERENCES users(id),
    cost         BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (challenge_id, team_id, hint_id)
);
