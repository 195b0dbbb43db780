-- Objects `strata check` found damaged (bytes missing, of the wrong size or checksum) and
-- could not restore from another copy: one row per object, for the version that was
-- checked. A rewrite (a new version) or a deletion makes the row moot.
CREATE TABLE object_damage (
    object_id      TEXT PRIMARY KEY,
    object_version BIGINT NOT NULL,
    found_at       BIGINT NOT NULL,
    problem        TEXT NOT NULL
);
