-- The decision trail of every workflow (SPEC §6), projected from the Temporal history: one row
-- per trail entry, keyed by (workflow_id, seq) so a retried activity writes nothing twice.
--
-- Append-only, and tamper-evident without relying on the trigger below (anyone who can disable
-- it can change rows): each row carries row_hash = sha256(prev_hash || canonical JSON of its
-- content), prev_hash being the row_hash of the row before it by id (64 zeros for the first).
-- The chain runs across the whole table, so editing, deleting or removing an incident's rows
-- breaks it at that point; yuqing.audit.projection.verify walks it. Writers take an advisory
-- lock (activities/audit.py) so that concurrent workers extend one chain.
CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    workflow_id   text        NOT NULL,
    incident_id   text        NOT NULL,
    post_id       text,
    seq           integer     NOT NULL CHECK (seq >= 0),
    at            timestamptz NOT NULL,
    kind          text        NOT NULL,
    actor         text,
    role          text,
    signal        text,
    refused       boolean     NOT NULL,
    refusal_kind  text,
    detail        text        NOT NULL,
    -- Not part of the hash: when the projection wrote the row, not when the trail says it happened.
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    prev_hash     text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    row_hash      text        NOT NULL CHECK (row_hash ~ '^[0-9a-f]{64}$'),
    UNIQUE (workflow_id, seq)
);
CREATE INDEX audit_log_incident ON audit_log (incident_id);

CREATE TRIGGER audit_log_is_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION yuqing_refuse_change();
-- TRUNCATE fires no row triggers; without this it would empty the table silently.
CREATE TRIGGER audit_log_is_not_truncated BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION yuqing_refuse_change();

-- Every deadline of every workflow as it stands now (SPEC §2.10, §5.4: met or missed, with the
-- person and unit responsible), for the compliance report across incidents. Current state,
-- upserted: its history is in audit_log (deadline_planned, deadline_met, deadline_breached…).
CREATE TABLE deadline_outcomes (
    workflow_id         text        NOT NULL,
    key                 text        NOT NULL,
    incident_id         text        NOT NULL,
    post_id             text,
    title               text        NOT NULL,
    clock               text        NOT NULL,
    starts_at           timestamptz NOT NULL,
    due_at              timestamptz NOT NULL,
    status              text        NOT NULL,
    met_at              timestamptz,
    breached_at         timestamptz,
    responsible_unit    text        NOT NULL,
    responsible_person  text,
    policy_version      text        NOT NULL,
    calendar_version    text,
    -- Length of the workflow's trail when this state was sent: a late attempt of an older
    -- activity (one Temporal timed out but that still ran) must not overwrite a newer state.
    trail_length        integer     NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, key)
);
CREATE INDEX deadline_outcomes_due ON deadline_outcomes (due_at);
CREATE INDEX deadline_outcomes_incident ON deadline_outcomes (incident_id);
