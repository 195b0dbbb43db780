-- Accesses each tier served, per minute: an access counts for the tier its object was on
-- when the access was counted (seconds after it, while a move's copy still serves from
-- the source). The live counterpart of the simulator's hot-tier hit share; minutes older
-- than a day are dropped by the roll-up.
CREATE TABLE tier_hits (
    tier         TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    hits         BIGINT NOT NULL CHECK (hits >= 0),
    PRIMARY KEY (tier, bucket_start)
);
