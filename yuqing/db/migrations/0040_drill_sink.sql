-- The drill sink (§5.3): a drill's notices, statements and evidence as they would have gone,
-- kept instead of sent. Keyed like the real ones, so a retried activity keeps one copy.
CREATE TABLE drill_sink (
    idempotency_key text PRIMARY KEY,
    incident_id text NOT NULL,
    kind text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    recipients jsonb NOT NULL DEFAULT '[]',
    withheld jsonb NOT NULL DEFAULT '[]',
    content_sha256 text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX drill_sink_incident ON drill_sink (incident_id);
