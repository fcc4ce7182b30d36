-- The event log: one append-only table. Every state change of the product is a row here;
-- read models are projections of it (see projections/). seq is gap-free because one writer
-- appends, so seq order is commit order.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    stream          TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL,
    type            TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    data            TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    occurred_at     TEXT    NOT NULL,
    correlation_id  TEXT,
    causation_id    TEXT,
    command_id      TEXT,
    prev_hash       TEXT    NOT NULL,
    hash            TEXT    NOT NULL
);
-- No index on (stream, stream_version): the single writer assigns stream versions from the
-- `streams` table inside the append transaction, so they cannot collide, and an index keyed
-- by stream would dirty one page per stream in every group commit (see docs/benchmarks.md).
-- No index on actor either, for the same reason: one leaf page per actor in every group
-- commit, about 60 % of the WAL a group of single-event appends writes. Filtering the log by
-- stream or actor scans it in seq order (a paged query stops at its limit).
CREATE INDEX events_command_id ON events(command_id) WHERE command_id IS NOT NULL;
CREATE INDEX events_type ON events(type, seq);
CREATE INDEX events_occurred_at ON events(occurred_at);

-- The log is append-only in the database itself, not only by convention.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused'); END;

-- One row per stream with its current version: the expected-version check is O(1).
CREATE TABLE streams (
    stream   TEXT PRIMARY KEY,
    type     TEXT NOT NULL,
    version  INTEGER NOT NULL
) WITHOUT ROWID;

-- Which version of each projection the read-model tables hold, and up to which seq.
CREATE TABLE projection_versions (
    name      TEXT PRIMARY KEY,
    version   INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL
) WITHOUT ROWID;

-- Secrets, AEAD-encrypted (chacha20poly1305). The additional data binds each ciphertext to
-- its id and owner, so a row copied elsewhere does not decrypt. Deleting an owner's rows
-- crypto-shreds its secrets while the event history stays intact.
CREATE TABLE vault (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX vault_owner ON vault(owner);

-- Browser sessions. Only the SHA-256 of the token is stored; the cookie carries the token.
CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions(user_id);

-- The current first-run setup token, hashed. Emptied when setup completes.
CREATE TABLE setup_tokens (
    token_hash  TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
) WITHOUT ROWID;
