-- Catalogue schema. Written in the SQL subset that PostgreSQL and SQLite share, because
-- one set of migrations serves both backends: TEXT ids, BIGINT epoch-millisecond UTC
-- timestamps, no backend-specific types or functions.

-- One row per stored object: where its bytes are now and what they should hash to.
CREATE TABLE objects (
    id             TEXT PRIMARY KEY,
    object_key     TEXT NOT NULL UNIQUE,
    size           BIGINT NOT NULL CHECK (size >= 0),
    content_type   TEXT NOT NULL,
    checksum       TEXT NOT NULL,
    tier           TEXT NOT NULL,
    -- Key of the bytes inside the tier's backend. It changes with every write and move,
    -- so a stale copy can never overwrite the current one.
    location       TEXT NOT NULL,
    -- Bumped on every content change; a move commits only if it is unchanged.
    version        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    access_total   BIGINT NOT NULL DEFAULT 0,
    last_access_at BIGINT
);
CREATE INDEX objects_by_tier ON objects (tier, id);

-- Access counts per object in fixed time buckets (minute and hour resolutions), the
-- history the spike detector warms up from and the forecaster learns from.
CREATE TABLE access_buckets (
    object_id     TEXT NOT NULL,
    resolution_ms BIGINT NOT NULL CHECK (resolution_ms IN (60000, 3600000)),
    bucket_start  BIGINT NOT NULL,
    hits          BIGINT NOT NULL CHECK (hits >= 0),
    PRIMARY KEY (object_id, resolution_ms, bucket_start)
);
CREATE INDEX access_buckets_by_time ON access_buckets (resolution_ms, bucket_start);

-- Tier moves: the queue (active rows) and the history (finished rows) in one table.
CREATE TABLE migrations (
    id             TEXT PRIMARY KEY,
    object_id      TEXT NOT NULL,
    object_version BIGINT NOT NULL,
    from_tier      TEXT NOT NULL,
    to_tier        TEXT NOT NULL,
    reason         TEXT NOT NULL CHECK (reason IN
                     ('manual', 'reactive_access_spike', 'proactive_prediction', 'capacity_rebalance')),
    -- Lower runs first: manual 0, reactive 1, proactive 2, rebalance 3.
    priority       BIGINT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN
                     ('pending', 'copying', 'verifying', 'completed', 'failed', 'cancelled')),
    attempts       BIGINT NOT NULL DEFAULT 0,
    bytes_copied   BIGINT NOT NULL DEFAULT 0,
    bytes_total    BIGINT NOT NULL,
    error          TEXT,
    created_at     BIGINT NOT NULL,
    started_at     BIGINT,
    finished_at    BIGINT,
    updated_at     BIGINT NOT NULL
);
-- At most one active move per object, enforced by the database itself so that two
-- processes enqueueing at once cannot both succeed.
CREATE UNIQUE INDEX migrations_one_active_per_object ON migrations (object_id)
    WHERE status IN ('pending', 'copying', 'verifying');
CREATE INDEX migrations_by_object ON migrations (object_id, id);
CREATE INDEX migrations_queue ON migrations (status, priority, id);

-- Trained forecasters; the JSON document is the same one written under models/.
CREATE TABLE models (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    document   TEXT NOT NULL,
    trained_at BIGINT NOT NULL,
    active     BIGINT NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
    UNIQUE (name, version)
);
CREATE UNIQUE INDEX models_one_active ON models (active) WHERE active = 1;

-- Kafka offsets, committed in the same transaction as the counts they produced, so a
-- crash or rebalance neither loses nor double-counts an event.
CREATE TABLE consumer_offsets (
    group_id     TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition_id BIGINT NOT NULL,
    next_offset  BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition_id)
);
