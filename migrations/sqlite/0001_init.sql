-- chatcluster schema v1 (SQLite). Migrations stay backward compatible: old pods keep running
-- while new ones roll in, so columns are only ever added, never renamed or dropped in one step.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- One row per conversation (a pair of users, or a group). last_seq is the sequence allocator:
-- bumped inside the transaction that stores the message, never by a cache.
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    last_seq    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE groups (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    owner            TEXT NOT NULL,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id),
    created_at       INTEGER NOT NULL
);

-- Who takes part in a conversation, from which seq on, and how far they acked:
-- acked_seq is the highest seq such that it and everything below it were acked by one of the
-- user's devices (or sent by the user).
CREATE TABLE memberships (
    user_id          TEXT NOT NULL,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id),
    joined_seq       INTEGER NOT NULL DEFAULT 0,
    acked_seq        INTEGER NOT NULL DEFAULT 0,
    active           INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, conversation_id)
);
CREATE INDEX memberships_by_conversation ON memberships (conversation_id, active);

-- Acks above a user's contiguous acked_seq, waiting for the gap below them to close.
CREATE TABLE acks (
    user_id          TEXT NOT NULL,
    conversation_id  TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    PRIMARY KEY (user_id, conversation_id, seq)
);

CREATE TABLE messages (
    conversation_id  TEXT NOT NULL REFERENCES conversations(id),
    seq              INTEGER NOT NULL,
    message_id       TEXT NOT NULL UNIQUE,
    sender           TEXT NOT NULL,
    sender_name      TEXT NOT NULL,
    recipient        TEXT,
    recipient_name   TEXT,
    group_id         TEXT,
    body             TEXT NOT NULL,
    file_type        INTEGER NOT NULL,
    client_msg_id    TEXT,
    request_id       TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    PRIMARY KEY (conversation_id, seq)
);
-- Idempotent send: (sender, clientMsgId) is unique.
CREATE UNIQUE INDEX messages_idempotency ON messages (sender, client_msg_id) WHERE client_msg_id IS NOT NULL;
