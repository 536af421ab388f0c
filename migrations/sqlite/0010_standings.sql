-- Standings maintained as jobs complete (issue 10), so a board reads one row per
-- team and track instead of every submission and matrix cell.

-- Each submission's score on each split: the sum of its shares over its matrix
-- cells (fooled for an attack, kept for a defense), added in cell order.
CREATE TABLE submission_scores (
    submission_id INTEGER NOT NULL,
    split         TEXT    NOT NULL,
    score         REAL    NOT NULL,
    opponents     INTEGER NOT NULL,
    PRIMARY KEY (submission_id, split)
);

-- Each team's counted submission per challenge, track and split (its chosen,
-- else its best scored one: riposte_core::leaderboard::team_standing).
CREATE TABLE track_standings (
    challenge_id  INTEGER NOT NULL,
    track         TEXT    NOT NULL,
    split         TEXT    NOT NULL,
    team_id       INTEGER NOT NULL,
    submission_id INTEGER NOT NULL,
    score         REAL    NOT NULL,
    opponents     INTEGER NOT NULL,
    queries_used  INTEGER,
    reached_at    INTEGER NOT NULL,
    PRIMARY KEY (challenge_id, track, split, team_id)
);

-- One row: `version` goes up in every transaction that changes what a board
-- shows (cells, scores, choices, solves, who counts, challenges), so every web
-- process can tell its cached boards are stale with one read. `built` is 0 until
-- the tables above hold the standings of the data already stored.
CREATE TABLE board_state (
    id      INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,
    built   INTEGER NOT NULL
);
INSERT INTO board_state (id, version, built) VALUES (1, 0, 0);
