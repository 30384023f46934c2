-- Each closed workflow's whole Temporal history, kept after Temporal's retention has passed
-- (SPEC §8), so the trail can be rebuilt and replayed when Temporal no longer has it.
--
-- `content` is the history as Temporal returned it (its payloads still encrypted by the codec,
-- so the archive is no easier to read than Temporal itself), as the JSON the SDK's
-- WorkflowHistory.from_json and the temporal CLI read, gzip-compressed; `sha256` is that of the
-- uncompressed JSON. The archive is anchored in the audit chain: `chain_row` is the audit_log
-- row (workflow_id 'archive:<workflow id>', seq = the run's place among that id's archived runs,
-- kind 'history_archived') whose detail carries the same digest, and `trail_head` is the
-- row_hash of the workflow's last trail row as its own history recorded it. (No foreign key: a
-- TRUNCATE of audit_log must meet its own trigger, and audit-verify checks the link itself.)
CREATE TABLE history_archive (
    workflow_id    text        NOT NULL,
    run_id         text        NOT NULL,
    incident_id    text        NOT NULL,
    post_id        text,
    workflow_type  text        NOT NULL,
    status         text        NOT NULL,
    started_at     timestamptz NOT NULL,
    closed_at      timestamptz NOT NULL,
    events         integer     NOT NULL CHECK (events > 0),
    size_bytes     integer     NOT NULL CHECK (size_bytes > 0),
    sha256         text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    trail_head     text                 CHECK (trail_head ~ '^[0-9a-f]{64}$'),
    content        bytea       NOT NULL,
    chain_row      bigint      NOT NULL UNIQUE,
    archived_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, run_id)
);
CREATE INDEX history_archive_incident ON history_archive (incident_id);

CREATE TRIGGER history_archive_is_append_only BEFORE UPDATE OR DELETE ON history_archive
    FOR EACH ROW EXECUTE FUNCTION yuqing_refuse_change();
CREATE TRIGGER history_archive_is_not_truncated BEFORE TRUNCATE ON history_archive
    FOR EACH STATEMENT EXECUTE FUNCTION yuqing_refuse_change();
