-- v1.1 group administration (28–31). Each active member has a role (one owner per group); a
-- member who leaves or is removed keeps read access up to the event that ended its membership
-- (left_seq), so it receives that event; a dissolved group is kept, marked; group events are
-- stored as messages whose `system` column holds the event (JSON).
ALTER TABLE memberships ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
ALTER TABLE memberships ADD COLUMN left_seq INTEGER;
ALTER TABLE groups ADD COLUMN dissolved_at INTEGER;
ALTER TABLE messages ADD COLUMN system TEXT;
UPDATE memberships SET role = 'owner'
WHERE EXISTS (SELECT 1 FROM groups g
              WHERE g.conversation_id = memberships.conversation_id AND g.owner = memberships.user_id);
