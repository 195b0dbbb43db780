-- What the mover needs to run moves safely across processes and crashes.
-- Worker holding the move and until when; a move whose lease ran out is reclaimed.
ALTER TABLE migrations ADD COLUMN claimed_by TEXT;
ALTER TABLE migrations ADD COLUMN lease_until BIGINT;
-- Earliest time a queued move may start (retry backoff).
ALTER TABLE migrations ADD COLUMN not_before BIGINT NOT NULL DEFAULT 0;
-- Where the bytes are read from and written to. Recorded before the copy starts, so
-- that recovery knows which copy to remove and which source to delete.
ALTER TABLE migrations ADD COLUMN source_location TEXT;
ALTER TABLE migrations ADD COLUMN dest_location TEXT;
-- 1 once the source copy of a completed move is gone; recovery deletes it otherwise.
ALTER TABLE migrations ADD COLUMN source_deleted BIGINT NOT NULL DEFAULT 0;
-- Statistics of the successful attempt.
ALTER TABLE migrations ADD COLUMN duration_ms BIGINT;
CREATE INDEX migrations_leases ON migrations (status, lease_until);
