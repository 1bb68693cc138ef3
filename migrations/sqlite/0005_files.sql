-- Files (DESIGN §11): uploads, and the message that carries one. Added only: old pods ignore both.

-- One row per upload; the bytes are in the object store under the id.
CREATE TABLE files (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mime        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
-- The unsent-upload sweep reads the oldest uploads first; erasure finds a user's uploads.
CREATE INDEX files_by_created ON files (created_at);
CREATE INDEX files_by_owner ON files (owner);

-- The upload a message carries; NULL for a message without one.
ALTER TABLE messages ADD COLUMN file_id TEXT;
-- Partial: a message without a file adds no entry, so plain messages cost no more to store.
-- Serves "was this upload sent?" (the sweep) and "who may read it?" (GET /api/files/{id}).
CREATE INDEX messages_by_file ON messages (file_id) WHERE file_id IS NOT NULL;
