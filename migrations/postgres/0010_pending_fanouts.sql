-- Fan-outs of stored messages that failed and wait in a pod's retry queue (issue 17, point 2):
-- one row per failed fan-out (a target pod's inbox refused the event, or the route lookup
-- failed), written only then and deleted when the retry goes through, so that a pod SIGKILLed
-- while its fan-outs wait does not take them along. `origin` is the process that wrote the
-- row (pod name and a per-process id) and holds its lease (`lease_until`, ms), renewed while
-- it retries; once the lease runs out any pod's sweeper claims the row (`FOR UPDATE SKIP
-- LOCKED`, as `webhook_deliveries`) and pushes `message` (JSON as on the bus) to the devices
-- `recipients` names. `target` is the refusing pod, '' for a failed route lookup. A new table
-- only: old pods keep running beside it.
CREATE TABLE pending_fanouts (
    message_id   TEXT NOT NULL,
    origin       TEXT NOT NULL,
    target       TEXT NOT NULL,
    message      TEXT NOT NULL,
    recipients   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_at      BIGINT NOT NULL,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    PRIMARY KEY (message_id, origin, target)
);
CREATE INDEX pending_fanouts_due ON pending_fanouts (lease_until);
CREATE INDEX pending_fanouts_owner ON pending_fanouts (lease_owner);
