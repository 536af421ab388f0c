-- PostgreSQL's 0019 makes queued jobs notify listening workers; SQLite has no
-- notifications (its workers share one machine and poll), so this version is
-- empty, to keep both schemas at the same version.
SELECT 1;
