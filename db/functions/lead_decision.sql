-- LEAD's decision on a delivered SD (migration 0015; docs/architecture.md, "LEAD's decision in
-- PostgreSQL"). SD-LIFECYCLE calls fn_record_lead_decision from its
-- `approve` and `reject` updates, with the update's id as p_request_id, before acknowledging
-- them; a retried activity records once. Only while the SD awaits LEAD's final approval
-- (pending_approval / LEAD_FINAL). It changes no phase, status or version: LEAD-FINAL-APPROVAL
-- does, and copies the latest approval (leo_lead_approval) into its handoff record and audit row.
CREATE OR REPLACE FUNCTION fn_record_lead_decision(
    p_sd_id text, p_session_id text, p_request_id text, p_decision text, p_approver text,
    p_reason text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id text;
    v_sd    strategic_directives_v2;
    v_id    uuid;
BEGIN
    IF p_request_id IS NULL OR btrim(p_request_id) = '' OR length(p_request_id) > 300 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_request_id must be 1 to 300 characters');
    END IF;
    IF p_decision IS NULL OR p_decision NOT IN ('approved', 'rejected') THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_decision must be approved or rejected');
    END IF;
    IF p_approver IS NULL OR btrim(p_approver) = '' OR length(p_approver) > 200 THEN
        RETURN leo_refusal('INVALID_INPUT', 'the approver must be named (1 to 200 characters)');
    END IF;
    IF length(coalesce(p_reason, '')) > 5000 THEN
        RETURN leo_refusal('INVALID_INPUT', 'the reason must be at most 5000 characters');
    END IF;
    IF p_decision = 'rejected' AND btrim(coalesce(p_reason, '')) = '' THEN
        RETURN leo_refusal('INVALID_INPUT', 'a rejection needs a reason');
    END IF;
    v_sd_id := leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id));
    END IF;

    -- The lock order of the transitions: the SD's advisory lock, then its row.
    PERFORM pg_advisory_xact_lock(leo_sd_lock_key(v_sd_id));
    SELECT * INTO v_sd FROM strategic_directives_v2 WHERE id = v_sd_id FOR UPDATE;

    SELECT id INTO v_id FROM sd_lead_decisions WHERE request_id = p_request_id;
    IF FOUND THEN
        RETURN jsonb_build_object('success', true, 'code', 'OK', 'decision_id', v_id,
                                  'idempotent_hit', true);
    END IF;
    IF (v_sd.status, v_sd.current_phase) <> ('pending_approval', 'LEAD_FINAL') THEN
        RETURN leo_refusal('INVALID_PHASE',
            format('%s is %s / %s; LEAD decides only on an SD at pending_approval / LEAD_FINAL',
                   v_sd_id, v_sd.status, v_sd.current_phase),
            jsonb_build_object('sd_id', v_sd_id, 'sd_status', v_sd.status,
                               'sd_phase', v_sd.current_phase));
    END IF;

    INSERT INTO sd_lead_decisions (sd_id, decision, approver, reason, session_id, request_id,
                                   transition_version)
    VALUES (v_sd_id, p_decision, btrim(p_approver), coalesce(p_reason, ''), p_session_id,
            p_request_id, v_sd.transition_version)
    RETURNING id INTO v_id;
    RETURN jsonb_build_object('success', true, 'code', 'OK', 'decision_id', v_id,
                              'idempotent_hit', false);
END $$;

-- The approval LEAD-FINAL-APPROVAL records: LEAD's latest decision on the SD when it is an
-- approval, else NULL (none recorded, as for a standalone `leo handoff LEAD-FINAL-APPROVAL`, or
-- the latest decision was a rejection).
CREATE OR REPLACE FUNCTION leo_lead_approval(p_canonical_sd_id text)
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT CASE WHEN d.decision = 'approved' THEN jsonb_build_object(
               'decision_id', d.id, 'approver', d.approver, 'reason', d.reason,
               'session_id', d.session_id, 'db_role', d.db_role, 'decided_at', d.decided_at)
           END
    FROM sd_lead_decisions d
    WHERE d.sd_id = p_canonical_sd_id
    ORDER BY d.decided_at DESC, d.id DESC
    LIMIT 1;
$$;

-- A transition state with LEAD's latest approval, if there is one, in its handoff record's
-- metadata (`lead_approval`).
CREATE OR REPLACE FUNCTION leo_with_lead_approval(p_state jsonb)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_approval jsonb := leo_lead_approval(p_state ->> 'sd_id');
    v_context  jsonb := CASE WHEN jsonb_typeof(p_state -> 'context') = 'object'
                             THEN p_state -> 'context' ELSE '{}' END;
BEGIN
    IF v_approval IS NULL THEN
        RETURN p_state;
    END IF;
    RETURN jsonb_set(p_state, '{context}', v_context || jsonb_build_object('metadata',
        CASE WHEN jsonb_typeof(v_context -> 'metadata') = 'object' THEN v_context -> 'metadata'
             ELSE '{}' END || jsonb_build_object('lead_approval', v_approval)));
END $$;

-- What a transition adds to its audit row for that approval: {"lead_approval": ...} or {}.
CREATE OR REPLACE FUNCTION leo_lead_approval_extra(p_state jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT CASE WHEN p_state #> '{context,metadata,lead_approval}' IS NULL THEN '{}'::jsonb
                ELSE jsonb_build_object('lead_approval', p_state #> '{context,metadata,lead_approval}')
           END;
$$;

-- The same for the one-statement path of LEAD-FINAL-APPROVAL: {"lead_approval": ...} or {}.
CREATE OR REPLACE FUNCTION leo_lead_approval_object(p_canonical_sd_id text)
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT CASE WHEN x.approval IS NULL THEN '{}'::jsonb
                ELSE jsonb_build_object('lead_approval', x.approval) END
    FROM (SELECT leo_lead_approval(p_canonical_sd_id) AS approval) x;
$$;
