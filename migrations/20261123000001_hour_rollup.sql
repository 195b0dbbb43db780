-- Hour buckets are summed from minute buckets ("rolled up") about once a minute instead
-- of being counted alongside them on every flush: a flush writes half the bucket rows,
-- and an object read many times a minute gets one hour-row write a minute rather than
-- one per flush.
--
-- `rolled_before` is the mark: the hour rows hold every minute bucket that starts before
-- it; minute buckets at or after it are not in any hour row yet, and readers add them.
-- NULL means no mark: the catalogue counted hour rows alongside minutes before this
-- migration and does so until its first roll-up sets one.
CREATE TABLE access_rollup (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    rolled_before BIGINT
);
INSERT INTO access_rollup (id, rolled_before)
SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM access_buckets) THEN NULL ELSE 0 END;
