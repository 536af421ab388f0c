-- A team may choose which scored submission counts (else its best does), and an
-- organizer may reveal the private ranking before a track closes.
ALTER TABLE submissions ADD COLUMN chosen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE challenges ADD COLUMN revealed BIGINT NOT NULL DEFAULT 0;
