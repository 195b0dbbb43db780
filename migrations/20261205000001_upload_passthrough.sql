-- Multipart uploads through the S3 endpoint onto an S3 tier pass each part straight into
-- a multipart upload on the tier (`tier_key`, `tier_upload_id`), which the tier
-- completes into the object; a part that went there has the tier's ETag and the CRC32C
-- it was sent with (`tier_etag`, `tier_crc32c`) instead of bytes of its own at
-- `location`. Every part keeps the BLAKE3 chaining values of its blocks (`tree`, hashed
-- as if it began at `tree_offset`), from which the object's checksum is put together
-- without reading it back. NULL on rows from before.
ALTER TABLE uploads ADD COLUMN tier_key TEXT;
ALTER TABLE uploads ADD COLUMN tier_upload_id TEXT;
ALTER TABLE upload_parts ADD COLUMN tier_etag TEXT;
ALTER TABLE upload_parts ADD COLUMN tier_crc32c TEXT;
ALTER TABLE upload_parts ADD COLUMN tree_offset BIGINT;
ALTER TABLE upload_parts ADD COLUMN tree TEXT;
