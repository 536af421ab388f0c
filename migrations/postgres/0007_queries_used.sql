-- Queries a team had spent on the challenge when its submission was scored
-- (model extraction breaks equal scores by fewer queries).
ALTER TABLE submissions ADD COLUMN queries_used BIGINT;
