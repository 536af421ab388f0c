-- When a challenge was last edited in the browser (issue 12). The import at
-- start-up leaves such a challenge alone (its folder is older than the edit);
-- an explicit import or upload clears it.
ALTER TABLE challenges ADD COLUMN edited_at BIGINT;
