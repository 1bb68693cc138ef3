-- v1.1 READ (18): how far each user has read each conversation. Sending advances the sender's
-- own read_seq; READ moves it up (never down), clamped to the conversation's last seq. A column
-- with a constant default is added without rewriting the table (PostgreSQL 11+), and old pods,
-- which never name it, keep running on the new schema.
ALTER TABLE memberships ADD COLUMN read_seq BIGINT NOT NULL DEFAULT 0;
