-- Claims in adopt mode go through their own session and claim functions, so that their
-- tooling and LEO see one claim: LEO registers its session the way their sessions register
-- (a claude_sessions row), then calls their claim_sd / release_sd. Same names and results as
-- native mode's functions (db/functions/claims.sql), so the Python side is the same.

CREATE OR REPLACE FUNCTION leo.claim_sd(p_sd_id text, p_session_id text, p_track text DEFAULT 'STANDALONE')
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id  text;
    v_sd_key text;
    v_raw    jsonb;
BEGIN
    IF p_session_id IS NULL OR btrim(p_session_id) = '' OR length(p_session_id) > 200 THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_session_id must be 1 to 200 characters');
    END IF;
    IF p_track IS NULL OR p_track NOT IN ('A', 'B', 'C', 'STANDALONE') THEN
        RETURN leo.leo_refusal('INVALID_INPUT', 'p_track must be one of A, B, C, STANDALONE');
    END IF;
    v_sd_id := leo.leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN leo.leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id),
                               jsonb_build_object('sd_id', p_sd_id));
    END IF;
    SELECT sd_key INTO v_sd_key FROM public.strategic_directives_v2 WHERE id = v_sd_id;
    -- Register the session (their claim refuses unregistered ones); a LEO session that was
    -- released before is registered again.
    INSERT INTO public.claude_sessions (session_id, status, heartbeat_at, metadata)
    VALUES (p_session_id, 'idle', now(), jsonb_build_object('registered_by', leo.leo_actor()))
    ON CONFLICT (session_id) DO UPDATE SET status = 'idle', heartbeat_at = now()
    WHERE claude_sessions.status = 'released'
      AND claude_sessions.metadata ->> 'registered_by' = leo.leo_actor();
    v_raw := public.claim_sd(p_sd_id => v_sd_key, p_session_id => p_session_id, p_track => p_track,
                             p_force_takeover => false);
    IF (v_raw ->> 'success')::boolean IS TRUE THEN
        RETURN jsonb_build_object('success', true, 'code', 'OK', 'sd_id', v_sd_id,
                                  'session_id', p_session_id, 'their_result', v_raw);
    END IF;
    IF v_raw ->> 'error' = 'already_claimed' THEN
        RETURN leo.leo_refusal('CLAIMED_BY_OTHER_SESSION',
            format('%s is claimed by session %s', v_sd_id, v_raw ->> 'claimed_by'),
            jsonb_build_object('sd_id', v_sd_id, 'claimed_by', v_raw ->> 'claimed_by'));
    END IF;
    RETURN leo.leo_refusal('INVALID_INPUT',
        format('their claim_sd refused %s for %s: %s', v_sd_id, p_session_id,
               coalesce(v_raw ->> 'message', v_raw ->> 'error', v_raw::text)),
        jsonb_build_object('sd_id', v_sd_id, 'their_result', v_raw));
END $$;

CREATE OR REPLACE FUNCTION leo.heartbeat_sd_claim(p_session_id text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_key text;
BEGIN
    UPDATE public.claude_sessions SET heartbeat_at = now()
    WHERE session_id = p_session_id AND sd_key IS NOT NULL AND status IN ('active', 'idle')
    RETURNING sd_key INTO v_key;
    IF NOT FOUND THEN
        -- Their claim functions keep no history of which SD a released session held.
        RETURN leo.leo_refusal('NO_ACTIVE_CLAIM',
            format('session %s holds no active claim (released, or taken over after 600 s without a heartbeat)',
                   p_session_id));
    END IF;
    RETURN jsonb_build_object('success', true, 'code', 'OK',
                              'sd_id', (SELECT id FROM public.strategic_directives_v2 WHERE sd_key = v_key),
                              'session_id', p_session_id);
END $$;

-- The heartbeat of a claim on one SD, as native mode's two-argument form (issue 17): keyed by
-- SD and session, on their claim (their session row holding the SD's sd_key, active or idle),
-- so a session their claim_sd moved to another SD learns that it lost this one (and does not
-- keep the other one alive). Refused with who holds the SD now, if anyone.
CREATE OR REPLACE FUNCTION leo.heartbeat_sd_claim(p_session_id text, p_sd_id text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id  text := leo.leo_resolve_sd_id(p_sd_id);
    v_key    text;
    v_holder text;
BEGIN
    SELECT sd_key INTO v_key FROM public.strategic_directives_v2 WHERE id = v_sd_id;
    UPDATE public.claude_sessions SET heartbeat_at = now()
    WHERE session_id = p_session_id AND sd_key = v_key AND status IN ('active', 'idle');
    IF NOT FOUND THEN
        SELECT h.session_id INTO v_holder FROM leo.leo_claim_holder(v_key) h;
        RETURN leo.leo_refusal('NO_ACTIVE_CLAIM',
            format('session %s holds no active claim on %s%s', p_session_id,
                   coalesce(v_sd_id, p_sd_id),
                   CASE WHEN v_holder IS NOT NULL
                        THEN format('; it is claimed by session %s', v_holder) ELSE '' END),
            jsonb_build_object('sd_id', v_sd_id, 'claimed_by', v_holder));
    END IF;
    RETURN jsonb_build_object('success', true, 'code', 'OK', 'sd_id', v_sd_id,
                              'session_id', p_session_id);
END $$;

CREATE OR REPLACE FUNCTION leo.release_sd(p_session_id text, p_reason text DEFAULT 'manual')
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_key text;
BEGIN
    IF p_reason IS NULL OR p_reason NOT IN ('completed', 'timeout', 'manual', 'conflict', 'session_ended') THEN
        RETURN leo.leo_refusal('INVALID_INPUT',
            'p_reason must be one of completed, timeout, manual, conflict, session_ended');
    END IF;
    SELECT sd_key INTO v_key FROM public.claude_sessions
    WHERE session_id = p_session_id AND sd_key IS NOT NULL AND status IN ('active', 'idle');
    IF v_key IS NULL THEN
        RETURN jsonb_build_object('success', true, 'code', 'NOT_CLAIMED', 'session_id', p_session_id);
    END IF;
    PERFORM public.release_sd(p_session_id => p_session_id, p_reason => p_reason);
    RETURN jsonb_build_object('success', true, 'code', 'OK',
                              'sd_id', (SELECT id FROM public.strategic_directives_v2 WHERE sd_key = v_key),
                              'session_id', p_session_id);
END $$;
