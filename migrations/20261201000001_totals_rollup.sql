-- Objects' access totals and last access times are rolled up from the minute buckets
-- along with the hours, instead of being updated by every flush: a flush then writes one
-- row per object and minute (its minute bucket) and nothing else, where it also rewrote
-- the object row of every object it counted.
--
-- `last_at` is the latest access counted in a minute bucket, epoch ms (NULL in hour rows).
-- From here on the mark `access_rollup.rolled_before` says what both hold: hour rows and
-- `objects.access_total` / `last_access_at` include every minute bucket that starts
-- before it, and readers add the minute buckets at or after it.
ALTER TABLE access_buckets ADD COLUMN last_at BIGINT;

-- Until now every flush added to the totals, while hour rows lacked the minutes from the
-- mark on. Bring the hour rows up to date, then put the mark after the last counted
-- minute (never before where it was), so that no minute is added to anything twice.
-- With no mark (NULL: hour rows were counted alongside the minutes) they are complete.
INSERT INTO access_buckets (object_id, resolution_ms, bucket_start, hits)
SELECT object_id, 3600000, hour_start, SUM(hits)
FROM (
    SELECT object_id, hits,
           bucket_start - ((bucket_start % 3600000) + 3600000) % 3600000 AS hour_start
    FROM access_buckets
    WHERE resolution_ms = 60000
      AND bucket_start >= (SELECT rolled_before FROM access_rollup WHERE id = 1)
) AS unrolled
WHERE true
GROUP BY object_id, hour_start
ON CONFLICT (object_id, resolution_ms, bucket_start)
DO UPDATE SET hits = access_buckets.hits + excluded.hits;

UPDATE access_rollup SET rolled_before = (
    SELECT CASE
        WHEN MAX(bucket_start) IS NULL THEN COALESCE(access_rollup.rolled_before, 0)
        WHEN access_rollup.rolled_before IS NULL
          OR MAX(bucket_start) + 60000 > access_rollup.rolled_before
            THEN MAX(bucket_start) + 60000
        ELSE access_rollup.rolled_before
    END
    FROM access_buckets WHERE resolution_ms = 60000
)
WHERE id = 1;
