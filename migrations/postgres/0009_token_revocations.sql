-- Token revocation (issue 17 §6): a kick revokes every token of the user issued before it
-- (device_id ''), a REGISTER logout the device's (device_id = that device). A token whose `iat`
-- (ms) is before the row's `not_before` (ms), or that has no `iat`, is refused at the upgrade.
-- One primary-key lookup per upgrade reads both rows. A new table only: old pods run beside it.
CREATE TABLE token_revocations (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
