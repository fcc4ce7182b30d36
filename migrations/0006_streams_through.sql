-- `streams` is no longer written in every group commit: the writer keeps stream versions in
-- memory and writes them to `streams` every few thousand events (with its checkpoints) and
-- when it stops. `streams_through` is the last seq whose versions `streams` holds; on open,
-- the versions of the events after it are read back from the log (see
-- server/src/store/streams.rs). Until now `streams` was always current.
CREATE TABLE store_state (
    key    TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO store_state (key, value)
    SELECT 'streams_through', coalesce(max(seq), 0) FROM events;
