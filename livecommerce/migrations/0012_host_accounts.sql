-- Host accounts for the console: a password (scrypt, see console/passwords.py) per host.
-- NULL = no password yet (the host can use bearer tokens only until one is set).
ALTER TABLE hosts ADD COLUMN password_hash text;
ALTER TABLE hosts ADD COLUMN password_changed_at timestamptz;
