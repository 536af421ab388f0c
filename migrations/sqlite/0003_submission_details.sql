-- What the submission page shows beyond counts (JSON): for an attack, a few
-- examples with the first organizer target's label and confidence before and after.
ALTER TABLE submissions ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
