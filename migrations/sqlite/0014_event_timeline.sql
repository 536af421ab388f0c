-- The event's timeline (issue 12): when it starts and ends (uploads, flags and
-- queries are refused outside) and when the scoreboard froze (competitors see
-- the boards as of that moment; organizers see them live). One row.
CREATE TABLE event_timeline (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    starts_at  INTEGER,
    ends_at    INTEGER,
    freeze_at  INTEGER,
    updated_at INTEGER NOT NULL
);
INSERT INTO event_timeline (id, starts_at, ends_at, freeze_at, updated_at) VALUES (1, NULL, NULL, NULL, 0);
