-- The MD5 of an object's content, in hex, when its writer declared one (S3's
-- Content-MD5) and the write checked it: the S3 endpoint's ETag then, as S3's own for a
-- one-request put, so that clients comparing ETags with local MD5s (rclone, s3cmd) can.
ALTER TABLE objects ADD COLUMN md5 TEXT;
