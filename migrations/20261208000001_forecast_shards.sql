-- Forecast shards: each process forecasts the objects of the shards it holds, and the
-- holder of shard 0 ranks every object against the tiers' capacities from what the
-- others stored. A prediction row now carries what that ranking reads: the value
-- placement ranks the object by (its prediction, or a burst in progress), the value's
-- variance as an estimate, and the object's accesses over the horizon at its last
-- day's rate.
ALTER TABLE predictions ADD COLUMN placement_value DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE predictions ADD COLUMN variance DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE predictions ADD COLUMN day_rate DOUBLE PRECISION NOT NULL DEFAULT 0;
