-- Files (DESIGN §11): uploads, and the message that carries one. Added only: old pods ignore both.

-- One row per upload; the bytes are in the object store under the id.
CREATE TABLE files (
    id          TEXT COLLATE "C" PRIMARY KEY,
    owner       TEXT COLLATE "C" NOT NULL,
    name        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    mime        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
-- The unsent-upload sweep reads the oldest uploads first; erasure finds a user's uploads.
CREATE INDEX files_by_created ON files (created_at);
CREATE INDEX files_by_owner ON files (owner);

-- The upload a message carries; NULL for a message without one. A nullable column without a
-- default is a catalog change only: no table rewrite, old pods keep inserting without it.
ALTER TABLE messages ADD COLUMN file_id TEXT COLLATE "C";
-- Partial: a message without a file adds no entry, so plain messages cost no more to store.
-- Serves "was this upload sent?" (the sweep) and "who may read it?" (GET /api/files/{id}).
CREATE INDEX messages_by_file ON messages (file_id) WHERE file_id IS NOT NULL;
