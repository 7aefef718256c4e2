-- Session claims (docs/leo-domain.md 1.8 and 6.2). A session claims an SD before it works on it;
-- the transition functions refuse a session that does not hold a live claim when another one
-- does. A claim whose heartbeat is older than 300 s is stale and may be taken over.

CREATE OR REPLACE FUNCTION claim_sd(p_sd_id text, p_session_id text, p_track text DEFAULT 'STANDALONE')
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id text;
    v_claim claude_sessions;
    v_previous text;
    v_took_over text;
BEGIN
    IF p_session_id IS NULL OR btrim(p_session_id) = '' OR length(p_session_id) > 200 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_session_id must be 1 to 200 characters');
    END IF;
    IF p_track IS NULL OR p_track NOT IN ('A', 'B', 'C', 'STANDALONE') THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_track must be one of A, B, C, STANDALONE');
    END IF;
    IF p_sd_id IS NULL OR btrim(p_sd_id) = '' THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_sd_id is required');
    END IF;
    v_sd_id := leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id),
                           jsonb_build_object('sd_id', p_sd_id));
    END IF;
    -- Serialise claims of one SD on its row; transitions take the advisory lock as well.
    PERFORM 1 FROM strategic_directives_v2 WHERE id = v_sd_id FOR UPDATE;

    v_claim := leo_live_claim(v_sd_id);
    IF v_claim.session_id IS NOT NULL AND v_claim.session_id <> p_session_id THEN
        RETURN leo_refusal('CLAIMED_BY_OTHER_SESSION',
            format('%s is claimed by session %s (heartbeat %s s ago)', v_sd_id, v_claim.session_id,
                   extract(epoch FROM now() - v_claim.heartbeat_at)::integer),
            jsonb_build_object('sd_id', v_sd_id, 'claimed_by', v_claim.session_id));
    END IF;

    -- A stale claim by someone else is released as a takeover.
    UPDATE claude_sessions SET status = 'released', released_at = now(), release_reason = 'takeover'
    WHERE sd_id = v_sd_id AND status = 'active' AND session_id <> p_session_id
    RETURNING session_id INTO v_took_over;

    -- This session's claim on another SD ends.
    SELECT sd_id INTO v_previous FROM claude_sessions
    WHERE session_id = p_session_id AND status = 'active' AND sd_id IS DISTINCT FROM v_sd_id;
    IF v_previous IS NOT NULL THEN
        UPDATE strategic_directives_v2
        SET claiming_session_id = NULL, active_session_id = NULL, is_working_on = false
        WHERE id = v_previous AND claiming_session_id = p_session_id;
    END IF;

    INSERT INTO claude_sessions (session_id, sd_id, track, status, heartbeat_at, claimed_at)
    VALUES (p_session_id, v_sd_id, p_track, 'active', now(), now())
    ON CONFLICT (session_id) DO UPDATE
    SET sd_id = EXCLUDED.sd_id, track = EXCLUDED.track, status = 'active', heartbeat_at = now(),
        claimed_at = CASE WHEN claude_sessions.sd_id IS NOT DISTINCT FROM EXCLUDED.sd_id
                               AND claude_sessions.status = 'active'
                          THEN claude_sessions.claimed_at ELSE now() END,
        released_at = NULL, release_reason = NULL;

    UPDATE strategic_directives_v2
    SET claiming_session_id = p_session_id, active_session_id = p_session_id, is_working_on = true
    WHERE id = v_sd_id;

    RETURN jsonb_build_object('success', true, 'code', 'OK', 'sd_id', v_sd_id,
                              'session_id', p_session_id, 'took_over_from', v_took_over,
                              'released_previous', v_previous);
END $$;

CREATE OR REPLACE FUNCTION heartbeat_sd_claim(p_session_id text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id text;
    v_holder claude_sessions;
BEGIN
    UPDATE claude_sessions SET heartbeat_at = now()
    WHERE session_id = p_session_id AND status = 'active'
    RETURNING sd_id INTO v_sd_id;
    IF NOT FOUND THEN
        -- Say who holds the SD now (a takeover), so the caller can report whom it lost it to.
        SELECT sd_id INTO v_sd_id FROM claude_sessions WHERE session_id = p_session_id;
        v_holder := leo_live_claim(v_sd_id);
        RETURN leo_refusal('NO_ACTIVE_CLAIM',
            format('session %s holds no active claim%s', p_session_id,
                   CASE WHEN v_holder.session_id IS NOT NULL
                        THEN format('; %s is claimed by session %s', v_sd_id, v_holder.session_id)
                        ELSE '' END),
            jsonb_build_object('sd_id', v_sd_id, 'claimed_by', v_holder.session_id));
    END IF;
    RETURN jsonb_build_object('success', true, 'code', 'OK', 'sd_id', v_sd_id, 'session_id', p_session_id);
END $$;

-- The heartbeat of a claim on one SD (issue 17): keyed by SD and session, so a session that
-- moved its claim to another SD learns that it lost this one (and does not keep the other
-- one alive). Refused with who holds the SD now, if anyone.
CREATE OR REPLACE FUNCTION heartbeat_sd_claim(p_session_id text, p_sd_id text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id text := leo_resolve_sd_id(p_sd_id);
    v_holder claude_sessions;
BEGIN
    UPDATE claude_sessions SET heartbeat_at = now()
    WHERE session_id = p_session_id AND status = 'active' AND sd_id = v_sd_id;
    IF NOT FOUND THEN
        v_holder := leo_live_claim(v_sd_id);
        RETURN leo_refusal('NO_ACTIVE_CLAIM',
            format('session %s holds no active claim on %s%s', p_session_id,
                   coalesce(v_sd_id, p_sd_id),
                   CASE WHEN v_holder.session_id IS NOT NULL
                        THEN format('; it is claimed by session %s', v_holder.session_id)
                        ELSE '' END),
            jsonb_build_object('sd_id', v_sd_id, 'claimed_by', v_holder.session_id));
    END IF;
    RETURN jsonb_build_object('success', true, 'code', 'OK', 'sd_id', v_sd_id, 'session_id', p_session_id);
END $$;

CREATE OR REPLACE FUNCTION release_sd(p_session_id text, p_reason text DEFAULT 'manual')
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id text;
BEGIN
    IF p_reason IS NULL OR p_reason NOT IN ('completed', 'timeout', 'manual', 'conflict', 'session_ended') THEN
        RETURN leo_refusal('INVALID_INPUT',
            'p_reason must be one of completed, timeout, manual, conflict, session_ended');
    END IF;
    -- The SD row first, then the session: the lock order of claim_sd and the transitions.
    PERFORM 1 FROM strategic_directives_v2
    WHERE id = (SELECT sd_id FROM claude_sessions WHERE session_id = p_session_id AND status = 'active')
    FOR UPDATE;
    UPDATE claude_sessions
    SET status = 'released', released_at = now(), release_reason = p_reason
    WHERE session_id = p_session_id AND status = 'active'
    RETURNING sd_id INTO v_sd_id;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('success', true, 'code', 'NOT_CLAIMED', 'session_id', p_session_id);
    END IF;
    UPDATE strategic_directives_v2
    SET claiming_session_id = NULL, active_session_id = NULL, is_working_on = false
    WHERE id = v_sd_id AND claiming_session_id = p_session_id;
    RETURN jsonb_build_object('success', true, 'code', 'OK', 'sd_id', v_sd_id, 'session_id', p_session_id);
END $$;
