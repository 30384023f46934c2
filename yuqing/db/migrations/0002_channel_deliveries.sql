-- Every delivery of a notice or a statement through a channel (e-mail, chat robot, publishing
-- gateway), one row per idempotency key, channel and target: a target once `delivered` (or
-- `rejected` for good, e.g. an unknown mailbox) is never sent to again, whatever retries follow.
-- `sending` is written before the message leaves, so a worker that dies mid-send leaves a
-- trace: the next attempt records that attempt's outcome as unknown and sends again, and the
-- receiver can de-duplicate on the idempotency key (Idempotency-Key header, Message-ID).
CREATE TABLE deliveries (
    idempotency_key  text        NOT NULL,
    channel          text        NOT NULL,
    target           text        NOT NULL,
    incident_id      text        NOT NULL,
    purpose          text        NOT NULL CHECK (purpose IN ('notice', 'statement')),
    status           text        NOT NULL
        CHECK (status IN ('sending', 'delivered', 'failed', 'rejected')),
    attempts         integer     NOT NULL DEFAULT 0,
    detail           text        NOT NULL DEFAULT '',
    -- Where a statement now is, as the publishing gateway answered.
    address          text,
    first_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    PRIMARY KEY (idempotency_key, channel, target)
);
CREATE INDEX deliveries_incident ON deliveries (incident_id);

-- Each attempt and its result, appended as it ends and never changed.
CREATE TABLE delivery_attempts (
    idempotency_key text        NOT NULL,
    channel         text        NOT NULL,
    target          text        NOT NULL,
    attempt         integer     NOT NULL,
    status          text        NOT NULL CHECK (status IN ('delivered', 'failed', 'rejected', 'unknown')),
    detail          text        NOT NULL DEFAULT '',
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (idempotency_key, channel, target, attempt),
    FOREIGN KEY (idempotency_key, channel, target) REFERENCES deliveries
);

CREATE TRIGGER delivery_attempts_are_fixed BEFORE UPDATE OR DELETE ON delivery_attempts
    FOR EACH ROW EXECUTE FUNCTION yuqing_refuse_change();
