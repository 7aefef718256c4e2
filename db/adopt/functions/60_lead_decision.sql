-- LEAD's decision in adopt mode: same name, signature and result as native mode's
-- fn_record_lead_decision (db/functions/lead_decision.sql), kept in leo.sd_lead_decisions.
-- LEAD-FINAL-APPROVAL copies the latest approval into its handoff row and result.

CREATE OR REPLACE FUNCTION leo.fn_record_lead_decision(
    p_sd_id text, p_session_id text, p_request_id text, p_decision text, p_approver text,
    p_reason text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id text;
    v_sd    public.strategic_directives_v2;
    v_id    uuid;
BEGIN
    IF p_request_id IS NULL OR btrim(p_request_id) = '' OR length(p_request_id) > 300 THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_request_id must be 1 to 300 characters');
    END IF;
    IF p_decision IS NULL OR p_decision NOT IN ('approved', 'rejected') THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_decision must be approved or rejected');
    END IF;
    IF p_approver IS NULL OR btrim(p_approver) = '' OR length(p_approver) > 200 THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'the approver must be named (1 to 200 characters)');
    END IF;
    IF length(coalesce(p_reason, '')) > 5000 THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'the reason must be at most 5000 characters');
    END IF;
    IF p_decision = 'rejected' AND btrim(coalesce(p_reason, '')) = '' THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'a rejection needs a reason');
    END IF;
    v_sd_id := leo.leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN leo.leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id));
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('leo:sd:' || v_sd_id, 0));
    SELECT * INTO v_sd FROM public.strategic_directives_v2 WHERE id = v_sd_id FOR UPDATE;
    SELECT id INTO v_id FROM leo.sd_lead_decisions WHERE request_id = p_request_id;
    IF FOUND THEN
        RETURN jsonb_build_object('success', true, 'code', 'OK', 'decision_id', v_id,
                                  'idempotent_hit', true);
    END IF;
    IF (v_sd.status, coalesce(v_sd.current_phase, 'LEAD_APPROVAL')) <> ('pending_approval', 'LEAD_FINAL') THEN
        RETURN leo.leo_refusal('INVALID_PHASE',
            format('%s is %s / %s; LEAD decides only on an SD at pending_approval / LEAD_FINAL',
                   v_sd_id, v_sd.status, v_sd.current_phase),
            jsonb_build_object('sd_id', v_sd_id, 'sd_status', v_sd.status,
                               'sd_phase', v_sd.current_phase));
    END IF;
    INSERT INTO leo.sd_lead_decisions (sd_id, decision, approver, reason, session_id, request_id,
                                       transition_version)
    VALUES (v_sd_id, p_decision, btrim(p_approver), coalesce(p_reason, ''), p_session_id,
            p_request_id, coalesce(v_sd.transition_version, 1))
    RETURNING id INTO v_id;
    RETURN jsonb_build_object('success', true, 'code', 'OK', 'decision_id', v_id,
                              'idempotent_hit', false);
END $$;

-- The latest decision on the SD when it is an approval, as recorded; else NULL.
CREATE OR REPLACE FUNCTION leo.leo_lead_approval(p_canonical_sd_id text)
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT CASE WHEN d.decision = 'approved' THEN jsonb_build_object(
               'decision_id', d.id, 'approver', d.approver, 'reason', d.reason,
               'session_id', d.session_id, 'db_role', d.db_role, 'decided_at', d.decided_at)
           END
    FROM leo.sd_lead_decisions d
    WHERE d.sd_id = p_canonical_sd_id
    ORDER BY d.decided_at DESC, d.id DESC
    LIMIT 1;
$$;
