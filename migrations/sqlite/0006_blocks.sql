-- v1.1 BLOCK (34/35): who blocks whom. users.blocking (0/1) says whether a user blocks anyone:
-- the writer reads it with the display name it already looks up for a 1:1 send's recipient, so
-- a send to a user who blocks no one costs no extra statement; only sends to a user who blocks
-- someone look the pair up in blocks. Old pods never name either and keep running.
CREATE TABLE blocks (
    blocker     TEXT NOT NULL,
    blocked     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (blocker, blocked)
);
ALTER TABLE users ADD COLUMN blocking INTEGER NOT NULL DEFAULT 0;
