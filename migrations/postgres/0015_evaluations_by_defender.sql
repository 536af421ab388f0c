-- Disqualifying or rescoring a submission deletes its cells and sums the scores
-- of the submissions it faced again: both need its cells as defender too (the
-- unique key serves the attacker side).
CREATE INDEX evaluations_defender ON evaluations (challenge_id, defender);
