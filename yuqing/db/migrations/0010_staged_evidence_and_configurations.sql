-- Evidence content stored before its incident exists (the HTTP API and the e-mail intake store
-- it first): the workflow carries only the content's SHA-256 and size, and fixing the evidence
-- copies it from here into `evidence`. Keyed by content, so storing it twice is storing it once.
CREATE TABLE evidence_staged (
    sha256      text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content     bytea       NOT NULL,
    size_bytes  integer     NOT NULL CHECK (size_bytes >= 0),
    staged_at   timestamptz NOT NULL DEFAULT now()
);

-- Each policy and roster an incident began under, as it was loaded, by the SHA-256 of its JSON:
-- activities and post workflows are handed that digest, not the whole text, and read it here
-- (a changed file under an unchanged version number is another snapshot, never a silent swap).
CREATE TABLE configuration_snapshots (
    sha256      text        PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    kind        text        NOT NULL CHECK (kind IN ('policy', 'roster')),
    version     text        NOT NULL,
    body        jsonb       NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER configuration_snapshots_are_fixed BEFORE UPDATE OR DELETE ON configuration_snapshots
    FOR EACH ROW EXECUTE FUNCTION yuqing_refuse_change();
