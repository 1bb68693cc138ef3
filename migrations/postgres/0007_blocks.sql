-- v1.1 BLOCK (34/35): who blocks whom. users.blocking (0/1) says whether a user blocks anyone:
-- the writer reads it with the display name it already looks up for a 1:1 send's recipient, so
-- a send to a user who blocks no one costs no extra statement; only sends to a user who blocks
-- someone look the pair up in blocks. A column with a constant default is added without
-- rewriting the table, and old pods, which never name either, keep running on the new schema.
CREATE TABLE blocks (
    blocker     TEXT COLLATE "C" NOT NULL,
    blocked     TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (blocker, blocked)
);
ALTER TABLE users ADD COLUMN blocking BIGINT NOT NULL DEFAULT 0;
