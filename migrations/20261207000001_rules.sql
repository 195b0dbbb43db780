-- Operator rules (pin, floor, ceiling, transition, expire by filter), bulk moves, and
-- the objects rules expired.

-- One row per rule; the document is the rule as the API and RULES_FILE write it.
CREATE TABLE rules (
    id         TEXT PRIMARY KEY,
    document   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Bulk moves: the request (filter and tier) and what was queued for it. Progress is
-- read off the moves that carry the batch's id.
CREATE TABLE move_batches (
    id            TEXT PRIMARY KEY,
    document      TEXT NOT NULL,
    to_tier       TEXT NOT NULL,
    objects_total BIGINT NOT NULL,
    bytes_total   BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    cancelled_at  BIGINT
);

-- Objects an expire rule deleted, as they were.
CREATE TABLE expirations (
    object_id  TEXT PRIMARY KEY,
    bucket     TEXT NOT NULL,
    object_key TEXT NOT NULL,
    size       BIGINT NOT NULL,
    tier       TEXT NOT NULL,
    rule_id    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expired_at BIGINT NOT NULL
);
CREATE INDEX expirations_by_rule ON expirations (rule_id, expired_at);

-- A move now names the rule or the batch that caused it, and `rule` is a reason. Neither
-- backend's shared SQL can change a CHECK constraint in place, so the table is rebuilt;
-- priorities are renumbered for the new reason (manual 0, rule 1, rebalance 2,
-- reactive 3, proactive 4).
CREATE TABLE migrations_next (
    id              TEXT PRIMARY KEY,
    object_id       TEXT NOT NULL,
    object_version  BIGINT NOT NULL,
    from_tier       TEXT NOT NULL,
    to_tier         TEXT NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN
                      ('manual', 'rule', 'reactive_access_spike', 'proactive_prediction',
                       'capacity_rebalance')),
    priority        BIGINT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN
                      ('pending', 'copying', 'verifying', 'completed', 'failed', 'cancelled')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    bytes_copied    BIGINT NOT NULL DEFAULT 0,
    bytes_total     BIGINT NOT NULL,
    error           TEXT,
    created_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    updated_at      BIGINT NOT NULL,
    claimed_by      TEXT,
    lease_until     BIGINT,
    not_before      BIGINT NOT NULL DEFAULT 0,
    source_location TEXT,
    dest_location   TEXT,
    source_deleted  BIGINT NOT NULL DEFAULT 0,
    duration_ms     BIGINT,
    rule_id         TEXT,
    batch_id        TEXT
);

INSERT INTO migrations_next (id, object_id, object_version, from_tier, to_tier, reason,
    priority, status, attempts, bytes_copied, bytes_total, error, created_at, started_at,
    finished_at, updated_at, claimed_by, lease_until, not_before, source_location,
    dest_location, source_deleted, duration_ms)
SELECT id, object_id, object_version, from_tier, to_tier, reason,
    CASE reason WHEN 'manual' THEN 0 WHEN 'capacity_rebalance' THEN 2
                WHEN 'reactive_access_spike' THEN 3 ELSE 4 END,
    status, attempts, bytes_copied, bytes_total, error, created_at, started_at,
    finished_at, updated_at, claimed_by, lease_until, not_before, source_location,
    dest_location, source_deleted, duration_ms
FROM migrations;

DROP TABLE migrations;
ALTER TABLE migrations_next RENAME TO migrations;

CREATE UNIQUE INDEX migrations_one_active_per_object ON migrations (object_id)
    WHERE status IN ('pending', 'copying', 'verifying');
CREATE INDEX migrations_by_object ON migrations (object_id, id);
CREATE INDEX migrations_queue ON migrations (status, priority, id);
CREATE INDEX migrations_leases ON migrations (status, lease_until);
CREATE INDEX migrations_by_batch ON migrations (batch_id, status) WHERE batch_id IS NOT NULL;
