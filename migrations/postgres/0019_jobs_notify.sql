-- Workers on other machines wake when a job is queued (issue 14): every row
-- of `jobs` that becomes queued notifies channel `riposte_jobs`. PostgreSQL
-- folds identical notifications of one transaction into one, so a rescore of
-- a thousand submissions wakes each listener once. Polling stays the fallback.
CREATE FUNCTION riposte_jobs_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('riposte_jobs', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_queued_notify
    AFTER INSERT OR UPDATE OF state ON jobs
    FOR EACH ROW WHEN (NEW.state = 'queued')
    EXECUTE FUNCTION riposte_jobs_notify();
