-- The S3 endpoint: every object lives in a bucket, and a key is unique within its bucket
-- (the same key may exist in two buckets). Objects from before there were buckets are in
-- `strata`, the default bucket's default name. User metadata (S3's x-amz-meta-*) is kept
-- as a JSON object of strings, and `modified_at` is when the content was last written (S3's
-- Last-Modified; a tier move changes `updated_at` only). Changing a column's uniqueness
-- takes a new table on SQLite.
CREATE TABLE objects_in_buckets (
    id             TEXT PRIMARY KEY,
    bucket         TEXT NOT NULL,
    object_key     TEXT NOT NULL,
    size           BIGINT NOT NULL CHECK (size >= 0),
    content_type   TEXT NOT NULL,
    checksum       TEXT NOT NULL,
    tier           TEXT NOT NULL,
    location       TEXT NOT NULL,
    version        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    access_total   BIGINT NOT NULL DEFAULT 0,
    last_access_at BIGINT,
    metadata       TEXT NOT NULL DEFAULT '{}',
    modified_at    BIGINT NOT NULL,
    UNIQUE (bucket, object_key)
);
INSERT INTO objects_in_buckets (id, bucket, object_key, size, content_type, checksum, tier,
    location, version, created_at, updated_at, access_total, last_access_at, modified_at)
SELECT id, 'strata', object_key, size, content_type, checksum, tier, location, version,
    created_at, updated_at, access_total, last_access_at, updated_at
FROM objects;
DROP TABLE objects;
ALTER TABLE objects_in_buckets RENAME TO objects;
CREATE INDEX objects_by_tier ON objects (tier, id);
CREATE INDEX objects_by_update ON objects (updated_at);

-- Multipart uploads in progress through the S3 endpoint. Each part is stored on the
-- landing tier as it arrives; completing the upload streams the parts, in order, into
-- the object's bytes and removes them.
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    bucket       TEXT NOT NULL,
    object_key   TEXT NOT NULL,
    content_type TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    tier         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE TABLE upload_parts (
    upload_id   TEXT NOT NULL,
    part_number BIGINT NOT NULL,
    size        BIGINT NOT NULL,
    checksum    TEXT NOT NULL,
    location    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
