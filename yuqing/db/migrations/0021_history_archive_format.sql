-- How an archived history is kept (record, issue 9's cost): 'protobuf' is the history's own
-- serialization (temporalio.api.history.v1.History, as Temporal returned it, payloads still
-- encrypted), gzip-compressed at level 6, `sha256` that of the uncompressed bytes; it costs a
-- fraction of the JSON to make and to read back (the JSON is rendered only when someone asks:
-- yuqing.audit.archive.unpack(...).to_json()). Histories archived before this are JSON, as
-- 0020 describes, and stay so (the table is append-only).
ALTER TABLE history_archive
    ADD COLUMN format text NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'protobuf'));
