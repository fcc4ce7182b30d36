-- Where each non-inline consumer of the event log (the alert evaluator, the notifier) has
-- read up to. Updated in the same transaction as the consumer's own appends, so a restart
-- neither loses nor repeats its work.
CREATE TABLE consumer_checkpoints (
    name  TEXT PRIMARY KEY,
    seq   INTEGER NOT NULL
) WITHOUT ROWID;
