-- Hidden accounts (test accounts, sponsors) play but count on no board and never
-- lower a flag's value, like staff and banned accounts (CTFd leaves them out).
ALTER TABLE users ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
CREATE INDEX submissions_challenge_track_sha ON submissions(challenge_id, track, blob_sha256);
