-- BYPASS-COMPLETION (LEO's own name for it, a handoff type since 0001): an operator completes an
-- SD without its gates, sub-agents or LEAD's approval, and says who and why. It is the one way
-- a role other than the worker's moves an SD (the transition functions are EXECUTE for
-- leo_worker only, db/privileges.sql). It is recorded as what it is, never as a gated
-- acceptance: an sd_phase_handoffs row of type BYPASS-COMPLETION with no score and no
-- validation (validation_passed NULL), its actor and reason, and an audit row of type
-- BYPASS_COMPLETION; both carry the database login (db_role, the column default session_user).
--
-- From any phase but COMPLETED or CANCELLED, to completed / COMPLETED with progress 100; the SD's
-- claims are released. Like a transition it takes the SD's advisory lock (CONCURRENT_LOCK),
-- checks p_expected_version (VERSION_CONFLICT) and a live claim of another session
-- (CLAIMED_BY_OTHER_SESSION: stop the lifecycle first), and is idempotent on p_request_id
-- (NULL: a new one). PRD and stories are not touched: nothing was verified.
CREATE OR REPLACE FUNCTION fn_bypass_completion(
    p_sd_id text, p_actor text, p_reason text, p_request_id text DEFAULT NULL,
    p_session_id text DEFAULT NULL, p_expected_version integer DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id      text;
    v_request_id text := coalesce(p_request_id, 'bypass/' || gen_random_uuid());
    v_sd         strategic_directives_v2;
    v_audit      sd_transition_audit;
    v_claim      claude_sessions;
    v_audit_id   uuid := gen_random_uuid();
    v_handoff_id uuid;
    v_pre        jsonb;
    v_post       jsonb;
    v_result     jsonb;
    v_released   integer;
BEGIN
    IF p_actor IS NULL OR length(btrim(p_actor)) NOT BETWEEN 1 AND 200 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_actor (who bypasses the gates) must be 1 to 200 characters');
    END IF;
    IF p_reason IS NULL OR length(btrim(p_reason)) NOT BETWEEN 1 AND 2000 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_reason (why the gates are bypassed) must be 1 to 2000 characters');
    END IF;
    IF p_request_id IS NOT NULL AND length(btrim(p_request_id)) NOT BETWEEN 1 AND 300 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_request_id must be NULL or 1 to 300 characters');
    END IF;
    IF p_session_id IS NOT NULL AND length(btrim(p_session_id)) NOT BETWEEN 1 AND 200 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_session_id must be NULL or 1 to 200 characters');
    END IF;
    v_sd_id := leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id),
                           jsonb_build_object('sd_id', p_sd_id));
    END IF;
    IF NOT pg_try_advisory_xact_lock(leo_sd_lock_key(v_sd_id))
       OR NOT pg_try_advisory_xact_lock(hashtextextended('leo:request:' || v_request_id, 0)) THEN
        RETURN leo_refusal('CONCURRENT_LOCK',
            format('a transition or an edit of %s is in progress; retry shortly', v_sd_id),
            jsonb_build_object('sd_id', v_sd_id));
    END IF;
    SELECT * INTO v_audit FROM sd_transition_audit WHERE request_id = v_request_id;
    IF FOUND THEN
        IF v_audit.sd_id <> v_sd_id OR v_audit.transition_type <> 'BYPASS_COMPLETION' THEN
            RETURN leo_refusal('INVALID_INPUT', format('request_id %s was already used for %s on %s',
                v_request_id, replace(v_audit.transition_type, '_', '-'), v_audit.sd_id));
        END IF;
        RETURN v_audit.result || jsonb_build_object('idempotent_hit', true);
    END IF;
    IF EXISTS (SELECT 1 FROM sd_phase_handoffs WHERE request_id = v_request_id) THEN
        RETURN leo_refusal('INVALID_INPUT',
            format('request_id %s already recorded a handoff; use a new request id', v_request_id));
    END IF;

    SELECT * INTO v_sd FROM strategic_directives_v2 WHERE id = v_sd_id FOR UPDATE;
    IF v_sd.status IN ('completed', 'cancelled') OR v_sd.current_phase IN ('COMPLETED', 'CANCELLED') THEN
        RETURN leo_refusal('INVALID_PHASE',
            format('BYPASS-COMPLETION cannot start from %s / %s; the SD is already closed',
                   v_sd.status, v_sd.current_phase),
            jsonb_build_object('sd_id', v_sd_id, 'expected', 'an SD that is not completed or cancelled',
                               'actual', jsonb_build_object('status', v_sd.status,
                                                            'current_phase', v_sd.current_phase)));
    END IF;
    IF p_expected_version IS NOT NULL AND p_expected_version <> v_sd.transition_version THEN
        RETURN leo_refusal('VERSION_CONFLICT',
            format('%s is at transition_version %s, the caller expected %s; reload and retry',
                   v_sd_id, v_sd.transition_version, p_expected_version),
            jsonb_build_object('sd_id', v_sd_id, 'expected_version', p_expected_version,
                               'actual_version', v_sd.transition_version));
    END IF;
    v_claim := leo_live_claim(v_sd_id);
    IF v_claim.session_id IS NOT NULL AND v_claim.session_id IS DISTINCT FROM p_session_id THEN
        RETURN leo_refusal('CLAIMED_BY_OTHER_SESSION',
            format('%s is claimed by session %s: stop its lifecycle (or wait until the claim goes stale after 300 s) before bypassing',
                   v_sd_id, v_claim.session_id),
            jsonb_build_object('sd_id', v_sd_id, 'claimed_by', v_claim.session_id));
    END IF;

    v_pre := leo_sd_state(v_sd_id);
    UPDATE strategic_directives_v2
    SET status = 'completed', current_phase = 'COMPLETED', progress_percentage = 100,
        is_working_on = false, active_session_id = NULL, claiming_session_id = NULL,
        completion_date = now(), transition_version = transition_version + 1
    WHERE id = v_sd_id;
    UPDATE claude_sessions SET status = 'released', released_at = now(), release_reason = 'manual'
    WHERE sd_id = v_sd_id AND status = 'active';
    GET DIAGNOSTICS v_released = ROW_COUNT;

    INSERT INTO sd_phase_handoffs (
        sd_id, handoff_type, from_phase, to_phase, status, validation_score, validation_passed,
        validation_details, metadata, request_id, session_id, actor, accepted_at)
    VALUES (
        v_sd_id, 'BYPASS-COMPLETION', v_sd.current_phase, 'COMPLETED', 'accepted', NULL, NULL,
        '{}', jsonb_build_object('bypass', true, 'reason', p_reason, 'audit_id', v_audit_id),
        v_request_id, p_session_id, p_actor, now())
    RETURNING id INTO v_handoff_id;

    v_post := leo_sd_state(v_sd_id);
    v_result := jsonb_build_object(
        'success', true, 'code', 'OK', 'idempotent_hit', false, 'bypass', true,
        'handoff_type', 'BYPASS-COMPLETION', 'request_id', v_request_id,
        'sd_id', v_sd_id, 'sd_key', v_sd.sd_key, 'actor', p_actor, 'reason', p_reason,
        'db_role', session_user, 'audit_id', v_audit_id, 'handoff_id', v_handoff_id,
        'transition_version', v_sd.transition_version + 1, 'claims_released', v_released,
        'pre_state', v_pre, 'post_state', v_post);
    INSERT INTO sd_transition_audit (
        id, sd_id, transition_type, session_id, request_id, pre_state, post_state, status,
        result, handoff_id, actor, completed_at)
    VALUES (
        v_audit_id, v_sd_id, 'BYPASS_COMPLETION', p_session_id, v_request_id, v_pre, v_post,
        'completed', v_result, v_handoff_id, p_actor, now());
    RETURN v_result;
END $$;

-- For a handoff asked to confirm a completion that a bypass made: a refusal that says so, so
-- that no caller reports a BYPASS-COMPLETION as a gated acceptance. NULL when the SD was not
-- completed by a bypass (or LEAD-FINAL-APPROVAL completed it as well).
CREATE OR REPLACE FUNCTION leo_bypass_refusal(p_state jsonb)
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT leo_refusal('INVALID_PHASE',
        format('%s was completed by a BYPASS-COMPLETION (by %s, database role %s: %s), not by its gates; %s reports no acceptance for it',
               h.sd_id, h.actor, coalesce(h.db_role, 'unknown'), h.metadata ->> 'reason',
               p_state ->> 'handoff_type'),
        jsonb_build_object('sd_id', h.sd_id, 'bypass', jsonb_build_object(
            'handoff_id', h.id, 'actor', h.actor, 'db_role', h.db_role,
            'reason', h.metadata ->> 'reason', 'at', h.accepted_at),
            'expected', 'an SD completed by LEAD-FINAL-APPROVAL',
            'actual', jsonb_build_object('status', p_state #>> '{sd,status}',
                                         'current_phase', p_state #>> '{sd,current_phase}')))
    FROM sd_phase_handoffs h
    WHERE h.sd_id = p_state ->> 'sd_id' AND h.handoff_type = 'BYPASS-COMPLETION'
      AND NOT EXISTS (SELECT 1 FROM sd_transition_audit a
                      WHERE a.sd_id = h.sd_id AND a.transition_type = 'LEAD_FINAL_APPROVAL'
                        AND a.status = 'completed')
    ORDER BY h.created_at DESC
    LIMIT 1;
$$;
