-- v1.1 RECALL (32): when the sender recalled the message. A recalled message keeps its row, seq
-- and id; its body is emptied, and reads return it as a tombstone.
ALTER TABLE messages ADD COLUMN recalled_at INTEGER;
