-- Offline-push webhook deliveries still to make (DESIGN §11 "Offline push"): one row per
-- (message, recipient user), written when the message found the user with no online device or
-- its devices left it unacked after the retry, deleted once the receiver answered 2xx or the
-- retry window ran out. `body` is the exact JSON posted (and signed) on every attempt.
-- Every pod's dispatcher claims due rows with `FOR UPDATE SKIP LOCKED` and sets `lease_until`
-- (ms): a pod that dies mid-delivery leaves a lease that runs out, and any other pod finishes
-- the row. A new table only: old pods keep running beside it. Numbered 0007: the next free
-- number after main's 0006_files.
CREATE TABLE webhook_deliveries (
    message_id   TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    body         TEXT NOT NULL,
    deadline     BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_at      BIGINT NOT NULL,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at);
