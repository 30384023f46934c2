-- Evidence fixed at intake (固定证据, SPEC §2.1): stored once, never changed.
CREATE TABLE evidence (
    evidence_id   text PRIMARY KEY,
    incident_id   text        NOT NULL,
    kind          text        NOT NULL,
    source_url    text,
    description   text        NOT NULL DEFAULT '',
    content       bytea       NOT NULL,
    sha256        text        NOT NULL,
    size_bytes    integer     NOT NULL,
    captured_at   timestamptz NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evidence_incident ON evidence (incident_id);

CREATE FUNCTION yuqing_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: rows are never changed or deleted', TG_TABLE_NAME;
END $$;

CREATE TRIGGER evidence_is_fixed BEFORE UPDATE OR DELETE ON evidence
    FOR EACH ROW EXECUTE FUNCTION yuqing_refuse_change();

-- Every notice the incident sends, keyed so that a retried activity never sends twice.
CREATE TABLE notification_outbox (
    idempotency_key text PRIMARY KEY,
    incident_id     text        NOT NULL,
    kind            text        NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    recipients      jsonb       NOT NULL,
    channel         text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    result          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX notification_outbox_incident ON notification_outbox (incident_id);

-- Every statement published in the bureau's name, one row per channel and draft version.
CREATE TABLE publications (
    idempotency_key text PRIMARY KEY,
    incident_id     text        NOT NULL,
    channel         text        NOT NULL,
    draft_version   integer     NOT NULL,
    address         text        NOT NULL,
    content         text        NOT NULL,
    content_sha256  text        NOT NULL,
    approvals       jsonb       NOT NULL,
    published_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX publications_incident ON publications (incident_id);

CREATE TRIGGER publications_are_fixed BEFORE UPDATE OR DELETE ON publications
    FOR EACH ROW EXECUTE FUNCTION yuqing_refuse_change();
