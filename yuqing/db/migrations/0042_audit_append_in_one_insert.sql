-- perf (issue 9): yuqing_append_trail (0041) inserts its batch in one INSERT … SELECT over the
-- arrays, not one INSERT for each row: each INSERT a PL/pgSQL loop runs is a statement of its
-- own (planned, started and ended for every row), most of the function's time. What it does is
-- unchanged: the same lock, the same check that no seq of the batch is there yet (NULL, nothing
-- written, when one is), the same hashes (sha256 of the previous row's hash followed by the
-- row's canonical content, chained in the batch's order), the same return (the last hash, or
-- the table's last when the batch is empty). The hashes are still chained in the loop (each
-- needs the one before), into arrays; the rows are then inserted in the batch's order (ORDER BY
-- the ordinality), so their ids follow that order and the table's last row is the chain's end.
CREATE OR REPLACE FUNCTION yuqing_append_trail(
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
    prev   text;
    hashes text[] := '{}';
    i      integer;
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
    -- hashes[1] is the chain's end before the batch; hashes[i + 1] is row i's.
    hashes[1] := coalesce(prev, repeat('0', 64));
    FOR i IN 1 .. coalesce(array_length(p_seq, 1), 0) LOOP
        hashes[i + 1] := encode(sha256(convert_to(hashes[i] || p_content[i], 'UTF8')), 'hex');
    END LOOP;
    INSERT INTO audit_log (workflow_id, incident_id, post_id, seq, at, kind, actor, role,
                           signal, refused, refusal_kind, detail, prev_hash, row_hash)
    SELECT p_workflow_id, p_incident_id, p_post_id, r.seq, r.at, r.kind, r.actor, r.role,
           r.signal, r.refused, r.refusal_kind, r.detail, hashes[r.n], hashes[r.n + 1]
    FROM unnest(p_seq, p_at, p_kind, p_actor, p_role, p_signal, p_refused, p_refusal_kind,
                p_detail)
         WITH ORDINALITY AS r (seq, at, kind, actor, role, signal, refused, refusal_kind,
                               detail, n)
    ORDER BY r.n;
    RETURN hashes[array_length(hashes, 1)];
END
$$;
