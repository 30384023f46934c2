-- A batch of trail rows appended to the chain in one statement (activities/audit.py): the
-- projection's usual case, rows never seen before, then costs one round trip instead of seven
-- (BEGIN, lock, two SELECTs, INSERT, COMMIT and the pool's reset), and holds the chain's lock
-- only while the server links and inserts, not across the client's round trips.
--
-- The hash is computed the way yuqing.audit.projection.chain_hash does: sha256 of prev_hash
-- followed by the canonical JSON of the row's content, which the caller sends (it is the text
-- `verify` recomputes from the row itself, so a caller that sent other text than its columns
-- would be found there). Rows are linked under the same advisory lock as every other writer of
-- audit_log (the history archive's anchors), so one chain runs across the table as before.
--
-- When any of the batch's seqs is recorded already (a retried activity, another run of the
-- workflow id) it writes nothing and returns NULL: the caller then takes its careful path,
-- which compares the rows found with its own.
--
-- SECURITY INVOKER (the default): it writes with the caller's rights, INSERT and SELECT on
-- audit_log for the service, and can do nothing the caller could not do row by row.
CREATE FUNCTION yuqing_append_trail(
    p_workflow_id  text,
    p_incident_id  text,
    p_post_id      text,
    p_seq          integer[],
    p_at           timestamptz[],
    p_kind         text[],
    p_actor        text[],
    p_role         text[],
    p_signal       text[],
    p_refused      boolean[],
    p_refusal_kind text[],
    p_detail       text[],
    p_content      text[]
) RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = public, pg_temp
AS $$
DECLARE
    prev text;
    this text;
    i    integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('yuqing.audit_log'));
    -- Read after the lock is held: each statement of the function sees what the previous
    -- holder committed before it let go.
    IF EXISTS (
        SELECT 1 FROM audit_log WHERE workflow_id = p_workflow_id AND seq = ANY (p_seq)
    ) THEN
        RETURN NULL;
    END IF;
    SELECT row_hash INTO prev FROM audit_log ORDER BY id DESC LIMIT 1;
    prev := coalesce(prev, repeat('0', 64));
    FOR i IN 1 .. coalesce(array_length(p_seq, 1), 0) LOOP
        this := encode(sha256(convert_to(prev || p_content[i], 'UTF8')), 'hex');
        INSERT INTO audit_log (workflow_id, incident_id, post_id, seq, at, kind, actor, role,
                               signal, refused, refusal_kind, detail, prev_hash, row_hash)
        VALUES (p_workflow_id, p_incident_id, p_post_id, p_seq[i], p_at[i], p_kind[i],
                p_actor[i], p_role[i], p_signal[i], p_refused[i], p_refusal_kind[i],
                p_detail[i], prev, this);
        prev := this;
    END LOOP;
    RETURN prev;
END
$$;
