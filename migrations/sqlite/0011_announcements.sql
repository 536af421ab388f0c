-- Announcements organizers post to the whole event (issue 12): markdown, shown
-- sanitized as a banner and on /announcements, served to clients by id.
CREATE TABLE announcements (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id  INTEGER NOT NULL REFERENCES users(id),
    title      TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
