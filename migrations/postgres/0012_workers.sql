-- Evaluator workers seen recently (issue 12, queue health): each worker writes
-- its owner name and the time every few seconds, working or idle.
CREATE TABLE workers (
    owner     TEXT   PRIMARY KEY,
    last_seen BIGINT NOT NULL
);
