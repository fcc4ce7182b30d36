-- One-time enrolment tokens. Only the SHA-256 of the token is kept; the repository
-- credentials it carries are in the vault (owner enrollment-<token_id>) until an agent
-- consumes it, then they move to the host.
CREATE TABLE enrollment_tokens (
    token_hash  TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL UNIQUE,
    hostname    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    host_id     TEXT
) WITHOUT ROWID;

-- Agents' persistent bearers, hashed. Revoked when the host is deleted.
CREATE TABLE agent_bearers (
    token_hash  TEXT PRIMARY KEY,
    host_id     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
) WITHOUT ROWID;
CREATE INDEX agent_bearers_host ON agent_bearers(host_id);
