-- Their two transition RPCs and their claim functions, re-implemented for these tests from the
-- documented behaviour, so that coexistence can be tested: same names, argument names and
-- result shapes; our own bodies.

-- EXEC-TO-PLAN as their RPC does it: no precondition, locked on the caller's spelling of the SD,
-- an in_progress audit row (keyed on uuid_id) updated to completed at the end.
CREATE FUNCTION fn_atomic_exec_to_plan_transition(
    p_sd_id text, p_prd_id text, p_session_id text, p_request_id text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    v_request text := coalesce(p_request_id, p_sd_id || '-' || coalesce(p_session_id, 'none') || '-'
                                              || extract(epoch FROM clock_timestamp())::text);
    v_sd      strategic_directives_v2;
    v_audit   uuid;
    v_pre     jsonb;
    v_stories integer;
BEGIN
    SELECT id INTO v_audit FROM sd_transition_audit WHERE request_id = v_request AND status = 'completed';
    IF FOUND THEN
        RETURN jsonb_build_object('success', true, 'idempotent_hit', true, 'audit_id', v_audit,
                                  'message', 'already applied');
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext(p_sd_id)) THEN
        RETURN jsonb_build_object('success', false, 'error', 'Concurrent transition in progress',
                                  'code', 'CONCURRENT_LOCK');
    END IF;
    SELECT * INTO v_sd FROM strategic_directives_v2 WHERE id = p_sd_id OR sd_key = p_sd_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('success', false, 'error', 'SD not found: ' || p_sd_id);
    END IF;
    v_pre := jsonb_build_object('sd_id', v_sd.id, 'sd_status', v_sd.status, 'sd_phase', v_sd.current_phase,
                                'sd_version', v_sd.transition_version, 'sd_progress', v_sd.progress_percentage);
    INSERT INTO sd_transition_audit (sd_id, transition_type, session_id, request_id, pre_state, status)
    VALUES (v_sd.uuid_id, 'EXEC_TO_PLAN', p_session_id, v_request, v_pre, 'in_progress')
    RETURNING id INTO v_audit;
    UPDATE user_stories
    SET status = CASE WHEN status = 'in_progress' THEN 'completed' ELSE status END,
        implementation_status = 'validated', updated_at = localtimestamp
    WHERE sd_id = v_sd.id AND status IN ('in_progress', 'draft', 'ready');
    GET DIAGNOSTICS v_stories = ROW_COUNT;
    IF p_prd_id IS NOT NULL AND p_prd_id <> '' THEN
        UPDATE product_requirements_v2 SET status = 'verification', phase = 'verification'
        WHERE id = p_prd_id;
    END IF;
    UPDATE strategic_directives_v2
    SET current_phase = 'EXEC_COMPLETE', status = 'active',
        transition_version = coalesce(transition_version, 1) + 1
    WHERE id = v_sd.id;
    UPDATE sd_transition_audit
    SET status = 'completed', completed_at = now(),
        post_state = jsonb_build_object('sd_phase', 'EXEC_COMPLETE', 'sd_status', 'active',
                                        'stories_updated', v_stories)
    WHERE id = v_audit;
    RETURN jsonb_build_object('success', true, 'audit_id', v_audit, 'stories_updated', v_stories,
                              'pre_state', v_pre);
END $$;

CREATE FUNCTION fn_atomic_lead_to_plan_transition(
    p_sd_id text, p_session_id text, p_request_id text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    v_request text := coalesce(p_request_id, p_sd_id || '-' || coalesce(p_session_id, 'none') || '-'
                                              || extract(epoch FROM clock_timestamp())::text);
    v_sd    strategic_directives_v2;
    v_audit uuid;
    v_pre   jsonb;
BEGIN
    SELECT id INTO v_audit FROM sd_transition_audit WHERE request_id = v_request AND status = 'completed';
    IF FOUND THEN
        RETURN jsonb_build_object('success', true, 'idempotent_hit', true, 'audit_id', v_audit);
    END IF;
    IF NOT pg_try_advisory_xact_lock(hashtext(p_sd_id)) THEN
        RETURN jsonb_build_object('success', false, 'error', 'Concurrent transition in progress',
                                  'code', 'CONCURRENT_LOCK');
    END IF;
    SELECT * INTO v_sd FROM strategic_directives_v2 WHERE id = p_sd_id OR sd_key = p_sd_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('success', false, 'error', 'SD not found: ' || p_sd_id);
    END IF;
    v_pre := jsonb_build_object('sd_id', v_sd.id, 'sd_status', v_sd.status, 'sd_phase', v_sd.current_phase,
                                'sd_version', v_sd.transition_version);
    INSERT INTO sd_transition_audit (sd_id, transition_type, session_id, request_id, pre_state, status)
    VALUES (v_sd.uuid_id, 'LEAD_TO_PLAN', p_session_id, v_request, v_pre, 'in_progress')
    RETURNING id INTO v_audit;
    UPDATE strategic_directives_v2
    SET current_phase = 'PLAN_PRD', status = 'in_progress',
        transition_version = coalesce(transition_version, 1) + 1
    WHERE id = v_sd.id;
    UPDATE sd_transition_audit
    SET status = 'completed', completed_at = now(),
        post_state = jsonb_build_object('sd_phase', 'PLAN_PRD', 'sd_status', 'in_progress')
    WHERE id = v_audit;
    RETURN jsonb_build_object('success', true, 'audit_id', v_audit, 'pre_state', v_pre);
END $$;

-- Their claim: by sd_key, for a registered session only (the phantom guard); a claim younger
-- than 600 s is another session's unless p_force_takeover.
CREATE FUNCTION claim_sd(
    p_sd_id text, p_session_id text, p_track text, p_force_takeover boolean DEFAULT false,
    p_client_gate_version integer DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    v_key    text;
    v_holder claude_sessions;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM claude_sessions WHERE session_id = p_session_id
                   AND status IS DISTINCT FROM 'released') THEN
        RETURN jsonb_build_object('success', false, 'error', 'session_not_registered',
                                  'message', 'register the session before claiming: ' || p_session_id);
    END IF;
    SELECT sd_key INTO v_key FROM strategic_directives_v2
    WHERE sd_key = p_sd_id OR id = p_sd_id ORDER BY (sd_key = p_sd_id) DESC LIMIT 1 FOR UPDATE;
    IF v_key IS NULL THEN
        RETURN jsonb_build_object('success', false, 'error', 'sd_not_found', 'sd_id', p_sd_id);
    END IF;
    SELECT * INTO v_holder FROM claude_sessions
    WHERE sd_key = v_key AND status IN ('active', 'idle') AND session_id <> p_session_id FOR UPDATE;
    IF FOUND THEN
        IF v_holder.heartbeat_at > now() - interval '600 seconds' AND NOT p_force_takeover THEN
            RETURN jsonb_build_object('success', false, 'error', 'already_claimed',
                                      'claimed_by', v_holder.session_id, 'sd_key', v_key);
        END IF;
        UPDATE claude_sessions
        SET sd_key = NULL, status = 'released', released_at = now(), updated_at = now(),
            released_reason = CASE WHEN p_force_takeover THEN 'force_takeover' ELSE 'stale_takeover' END
        WHERE id = v_holder.id;
    END IF;
    UPDATE claude_sessions
    SET sd_key = v_key, track = p_track, status = 'active', claimed_at = now(), heartbeat_at = now(),
        released_reason = NULL, released_at = NULL, updated_at = now()
    WHERE session_id = p_session_id;
    RETURN jsonb_build_object('success', true, 'sd_key', v_key, 'session_id', p_session_id);
END $$;

CREATE FUNCTION release_sd(p_session_id text, p_reason text DEFAULT 'manual')
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    v_key text;
BEGIN
    SELECT sd_key INTO v_key FROM claude_sessions WHERE session_id = p_session_id FOR UPDATE;
    IF v_key IS NOT NULL THEN
        UPDATE claude_sessions
        SET sd_key = NULL, status = 'idle', released_reason = p_reason, released_at = now(),
            updated_at = now()
        WHERE session_id = p_session_id;
    END IF;
    RETURN jsonb_build_object('success', true, 'released_sd_key', v_key);
END $$;

GRANT EXECUTE ON FUNCTION fn_atomic_exec_to_plan_transition(text, text, text, text),
                          fn_atomic_lead_to_plan_transition(text, text, text),
                          claim_sd(text, text, text, boolean, integer),
                          release_sd(text, text),
                          handoff_actor_policy(text)
    TO anon, authenticated, service_role;
