-- Databases created before 0001 lost its actor index still have it: drop it, so every
-- database writes the same pages per group commit (see 0001 and docs/benchmarks.md).
DROP INDEX IF EXISTS events_actor;
