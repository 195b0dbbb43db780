-- Objects and bytes per tier, kept by every statement that adds, removes, resizes or
-- moves an object (as rows of changes, so concurrent writers never wait for each other
-- on one counter row) and folded into one row per tier by the minute's roll-up. A tier's
-- figures are the sum of its rows: reading them never scans the objects.
CREATE TABLE tier_counts (
    tier    TEXT NOT NULL,
    objects BIGINT NOT NULL,
    bytes   BIGINT NOT NULL
);

INSERT INTO tier_counts (tier, objects, bytes)
SELECT tier, COUNT(*), COALESCE(SUM(size), 0) FROM objects GROUP BY tier;
