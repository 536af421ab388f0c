-- Failed logins count per (account, client), so nobody can lock an account's
-- owner out by failing on purpose from elsewhere (OWASP authentication guidance).
ALTER TABLE login_failures ADD COLUMN client TEXT NOT NULL DEFAULT '';
CREATE INDEX login_failures_user_client_at ON login_failures(user_id, client, at);
