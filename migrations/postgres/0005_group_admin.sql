-- v1.1 group administration (28–31). Each active member has a role (one owner per group); a
-- member who leaves or is removed keeps read access up to the event that ended its membership
-- (left_seq), so it receives that event; a dissolved group is kept, marked; group events are
-- stored as messages whose `system` column holds the event (JSON). Columns with constant or no
-- defaults: no table rewrite; old pods never name them and keep running.
ALTER TABLE memberships ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
ALTER TABLE memberships ADD COLUMN left_seq BIGINT;
ALTER TABLE groups ADD COLUMN dissolved_at BIGINT;
ALTER TABLE messages ADD COLUMN system TEXT;
UPDATE memberships m SET role = 'owner'
FROM groups g
WHERE g.conversation_id = m.conversation_id AND g.owner = m.user_id;
