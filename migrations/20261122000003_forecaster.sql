-- What the scheduled forecaster keeps in the catalogue.

-- The latest prediction per object, written by the forecaster when it changes
-- noticeably, shown with the object.
CREATE TABLE predictions (
    object_id          TEXT PRIMARY KEY,
    predicted_accesses DOUBLE PRECISION NOT NULL,
    horizon_hours      BIGINT NOT NULL,
    predicted_tier     TEXT NOT NULL,
    model_version      BIGINT NOT NULL,
    predicted_at       BIGINT NOT NULL
);

-- Named leases: the holder of an unexpired lease is the only process that runs the job
-- it names (the forecaster), so several `strata serve` never both enqueue its moves.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- The forecaster follows tier changes incrementally: rows updated since its last run.
CREATE INDEX objects_by_update ON objects (updated_at);
