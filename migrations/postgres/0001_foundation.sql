-- Accounts, teams, sessions, API tokens and the challenge catalog.
-- Times are Unix seconds (BIGINT); booleans are BIGINT 0/1 (the sqlx Any driver
-- reads neither native bools nor timestamps).

CREATE TABLE teams (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT    NOT NULL,
    name_key    TEXT    NOT NULL UNIQUE,
    invite_code TEXT    NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('competitor', 'organizer', 'admin')),
    banned        BIGINT NOT NULL DEFAULT 0,
    team_id       BIGINT REFERENCES teams(id) ON DELETE SET NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX users_team ON users(team_id);

CREATE TABLE login_failures (
    id      BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    at      BIGINT NOT NULL
);
CREATE INDEX login_failures_user_at ON login_failures(user_id, at);

CREATE TABLE sessions (
    id_hash      TEXT    PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token   TEXT    NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE challenges (
    id         BIGSERIAL PRIMARY KEY,
    slug       TEXT    NOT NULL UNIQUE,
    title      TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    difficulty TEXT    NOT NULL,
    tags       TEXT    NOT NULL,
    points     BIGINT NOT NULL,
    summary    TEXT    NOT NULL,
    readme     TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    files      TEXT    NOT NULL,
    hidden     BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
