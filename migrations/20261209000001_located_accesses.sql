-- An access named by where its bytes are stored (an S3 bucket notification) finds its
-- object by tier and location, or by tier and key, through these indexes instead of
-- reading every object of the tier.
CREATE INDEX objects_by_location ON objects (tier, location);
CREATE INDEX objects_by_tier_key ON objects (tier, object_key);
