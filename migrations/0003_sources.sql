-- The paths of the default source group a host gets when it enrols (JSON array; NULL means
-- the built-in default).
ALTER TABLE enrollment_tokens ADD COLUMN default_paths TEXT;
