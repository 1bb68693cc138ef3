-- chatcluster schema v1 (PostgreSQL): the same tables as migrations/sqlite, for cluster mode.
-- Migrations stay backward compatible: old pods keep running while new ones roll in, so columns
-- are only ever added, never renamed or dropped in one step.
--
-- Ids are TEXT COLLATE "C": they are compared byte by byte, as SQLite does and as the gateway
-- sorts them, whatever the database's default collation.

CREATE TABLE users (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- One row per conversation (a pair of users, or a group). last_seq is the sequence allocator:
-- bumped inside the transaction that stores the message (its row lock orders concurrent pods),
-- never by a cache.
CREATE TABLE conversations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    last_seq    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

CREATE TABLE groups (
    id               TEXT COLLATE "C" PRIMARY KEY,
    name             TEXT NOT NULL,
    owner            TEXT COLLATE "C" NOT NULL,
    conversation_id  TEXT COLLATE "C" NOT NULL REFERENCES conversations(id),
    created_at       BIGINT NOT NULL
);

-- Who takes part in a conversation, from which seq on, and how far they acked:
-- acked_seq is the highest seq such that it and everything below it were acked by one of the
-- user's devices (or sent by the user). active is 1 or 0, as in SQLite.
CREATE TABLE memberships (
    user_id          TEXT COLLATE "C" NOT NULL,
    conversation_id  TEXT COLLATE "C" NOT NULL REFERENCES conversations(id),
    joined_seq       BIGINT NOT NULL DEFAULT 0,
    acked_seq        BIGINT NOT NULL DEFAULT 0,
    active           SMALLINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    PRIMARY KEY (user_id, conversation_id)
);
CREATE INDEX memberships_by_conversation ON memberships (conversation_id, active);

-- Acks above a user's contiguous acked_seq, waiting for the gap below them to close.
CREATE TABLE acks (
    user_id          TEXT COLLATE "C" NOT NULL,
    conversation_id  TEXT COLLATE "C" NOT NULL,
    seq              BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id, seq)
);

CREATE TABLE messages (
    conversation_id  TEXT COLLATE "C" NOT NULL REFERENCES conversations(id),
    seq              BIGINT NOT NULL,
    message_id       TEXT COLLATE "C" NOT NULL UNIQUE,
    sender           TEXT COLLATE "C" NOT NULL,
    sender_name      TEXT NOT NULL,
    recipient        TEXT COLLATE "C",
    recipient_name   TEXT,
    group_id         TEXT COLLATE "C",
    body             TEXT NOT NULL,
    file_type        BIGINT NOT NULL,
    client_msg_id    TEXT COLLATE "C",
    request_id       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    PRIMARY KEY (conversation_id, seq)
);
-- Idempotent send: (sender, clientMsgId) is unique. Two pods storing the same resend at once:
-- the second insert fails on this index and its batch is run again, finding the first.
CREATE UNIQUE INDEX messages_idempotency ON messages (sender, client_msg_id) WHERE client_msg_id IS NOT NULL;
