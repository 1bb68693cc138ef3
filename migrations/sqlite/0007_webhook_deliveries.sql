-- Offline-push webhook deliveries still to make (DESIGN §11 "Offline push"): one row per
-- (message, recipient user), written when the message found the user with no online device or
-- its devices left it unacked after the retry, deleted once the receiver answered 2xx or the
-- retry window ran out. `body` is the exact JSON posted (and signed) on every attempt.
-- `lease_until` (ms) fences a row while one dispatcher posts it. The next free number after main's
-- 0005_files.
CREATE TABLE webhook_deliveries (
    message_id   TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    body         TEXT NOT NULL,
    deadline     INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    lease_until  INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at);
