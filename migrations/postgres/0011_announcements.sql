-- Announcements organizers post to the whole event (issue 12): markdown, shown
-- sanitized as a banner and on /announcements, served to clients by id.
CREATE TABLE announcements (
    id         BIGSERIAL PRIMARY KEY,
    author_id  BIGINT NOT NULL REFERENCES users(id),
    title      TEXT   NOT NULL,
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
