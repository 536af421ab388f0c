-- Evaluation you can trust (issue 15).

-- Each cell's fooled examples of its split, as lowercase hex (riposte_core::examples);
-- '' for cells stored before per-example results were kept.
ALTER TABLE evaluations ADD COLUMN examples TEXT NOT NULL DEFAULT '';

-- A defending submission's union of fooled examples over its cells, the examples
-- the union covers, and whether a cell without per-example results was seen.
ALTER TABLE submission_scores ADD COLUMN fooled_union TEXT NOT NULL DEFAULT '';
ALTER TABLE submission_scores ADD COLUMN union_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE submission_scores ADD COLUMN incomplete INTEGER NOT NULL DEFAULT 0;

-- `score` is what the board ranks by (the challenge's rank_by); the sum of shares
-- and the worst case are kept beside it.
ALTER TABLE track_standings ADD COLUMN sum_score REAL NOT NULL DEFAULT 0;
ALTER TABLE track_standings ADD COLUMN worst_case REAL NOT NULL DEFAULT 0;
ALTER TABLE track_standings ADD COLUMN worst_case_known INTEGER NOT NULL DEFAULT 0;

-- What produced a submission's result (engine, hashes, batch sizes, seeds, scorer
-- version) as JSON; '' before it was recorded.
ALTER TABLE submissions ADD COLUMN provenance TEXT NOT NULL DEFAULT '';

-- Jobs: 'score' (a submission's scoring) or 'battery' (the background reference
-- battery against an accepted defense). Workers claim lower priority first.
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'score';
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;

-- The battery's run against one defense: its budget, what it used, and the
-- median perturbation of the examples it flipped.
CREATE TABLE batteries (
    submission_id      INTEGER PRIMARY KEY,
    queries_per_example INTEGER NOT NULL,
    examples           INTEGER NOT NULL,
    queries_used       INTEGER NOT NULL,
    fooled             INTEGER NOT NULL,
    seconds            REAL    NOT NULL,
    median_linf        REAL    NOT NULL,
    median_l2          REAL    NOT NULL,
    cut_short          INTEGER NOT NULL,
    finished_at        INTEGER NOT NULL
);

-- The standings gain columns: build them again from the cells.
UPDATE board_state SET built = 0;
