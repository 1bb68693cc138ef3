-- v1.1 READ (18): how far each user has read each conversation. Sending advances the sender's
-- own read_seq; READ moves it up (never down), clamped to the conversation's last seq.
ALTER TABLE memberships ADD COLUMN read_seq INTEGER NOT NULL DEFAULT 0;
