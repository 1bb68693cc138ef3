-- Room on each page of `messages` for the one update a message gets after its insert
-- (`delivered_at`, set by the first ack of a 1:1 message). With full pages (the default
-- fillfactor, 100) three updates in four moved the row to another page and wrote new entries
-- into all three of the table's indexes; with free room on its page the update is a HOT update:
-- no index is touched, and the old version is pruned in place. Applies to pages filled from now
-- on; existing rows stay where they are. The lock it takes (SHARE UPDATE EXCLUSIVE) does not
-- block reads or writes, so it is safe while old pods keep running.
ALTER TABLE messages SET (fillfactor = 75);
