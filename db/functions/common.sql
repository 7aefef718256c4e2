-- Shared pieces of the five fn_atomic_<handoff>_transition functions. Each handoff function
-- owns its precondition and its numbered steps; what every handoff does the same way
-- (argument checks, SD resolution, the advisory lock, idempotency, the version and claim
-- checks, the audit row) lives here once. All functions pin search_path.

-- A refusal: a structured result with a stable code. Refusals write nothing.
CREATE OR REPLACE FUNCTION leo_refusal(p_code text, p_message text, p_extra jsonb DEFAULT '{}')
RETURNS jsonb LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT jsonb_build_object('success', false, 'code', p_code, 'error', p_message) || coalesce(p_extra, '{}');
$$;

-- The SD a caller names, by canonical id or sd_key. The id wins if both could match.
CREATE OR REPLACE FUNCTION leo_resolve_sd_id(p_sd_id text)
RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT id FROM strategic_directives_v2
    WHERE id = p_sd_id OR sd_key = p_sd_id
    ORDER BY (id = p_sd_id) DESC
    LIMIT 1;
$$;

-- The advisory lock key of an SD: always from the canonical id, never the caller's spelling.
CREATE OR REPLACE FUNCTION leo_sd_lock_key(p_canonical_sd_id text)
RETURNS bigint LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT hashtextextended('leo:sd:' || p_canonical_sd_id, 0);
$$;

-- The session holding a live claim on an SD (heartbeat younger than 300 s), if any.
CREATE OR REPLACE FUNCTION leo_live_claim(p_canonical_sd_id text)
RETURNS claude_sessions LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT * FROM claude_sessions
    WHERE sd_id = p_canonical_sd_id AND status = 'active'
      AND heartbeat_at > now() - interval '300 seconds'
    LIMIT 1;
$$;

-- The state of an SD as an audit row's pre_state and post_state record it: one shape for the
-- step-by-step path (leo_sd_state) and the one-statement path of each transition.
-- PL/pgSQL, not SQL: called inside the transition's statement, where a SQL function with a SET
-- clause is planned again on every call (before PostgreSQL 18); PL/pgSQL keeps its plan.
CREATE OR REPLACE FUNCTION leo_state_object(
    p_sd_id text, p_sd_key text, p_sd_status text, p_sd_phase text, p_sd_version integer,
    p_sd_progress integer, p_is_working_on boolean, p_claiming_session_id text,
    p_prd_id text, p_prd_status text, p_prd_phase text, p_stories jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RETURN jsonb_build_object(
        'sd_id', p_sd_id, 'sd_key', p_sd_key, 'sd_status', p_sd_status, 'sd_phase', p_sd_phase,
        'sd_version', p_sd_version, 'sd_progress', p_sd_progress, 'is_working_on', p_is_working_on,
        'claiming_session_id', p_claiming_session_id,
        'prd_id', p_prd_id, 'prd_status', p_prd_status, 'prd_phase', p_prd_phase,
        'stories', coalesce(p_stories, '{}'));
END $$;

CREATE OR REPLACE FUNCTION leo_sd_state(p_canonical_sd_id text)
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT leo_state_object(
        sd.id, sd.sd_key, sd.status, sd.current_phase, sd.transition_version,
        sd.progress_percentage, sd.is_working_on, sd.claiming_session_id,
        prd.id, prd.status, prd.phase,
        (SELECT jsonb_object_agg(st.status, st.n)
         FROM (SELECT status, count(*) AS n FROM user_stories
               WHERE sd_id = sd.id GROUP BY status) st))
    FROM strategic_directives_v2 sd
    LEFT JOIN product_requirements_v2 prd ON prd.sd_id = sd.id
    WHERE sd.id = p_canonical_sd_id;
$$;

-- What a completed transition returns (and its audit row keeps as `result`): one shape for
-- both paths.
CREATE OR REPLACE FUNCTION leo_transition_result(
    p_handoff_type text, p_request_id text, p_sd_id text, p_sd_key text, p_audit_id uuid,
    p_handoff_id uuid, p_version integer, p_pre jsonb, p_post jsonb, p_extra jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    RETURN jsonb_build_object(
        'success', true, 'code', 'OK', 'idempotent_hit', false,
        'handoff_type', p_handoff_type, 'request_id', p_request_id,
        'sd_id', p_sd_id, 'sd_key', p_sd_key,
        'audit_id', p_audit_id, 'handoff_id', p_handoff_id, 'transition_version', p_version,
        'pre_state', p_pre, 'post_state', p_post) || coalesce(p_extra, '{}');
END $$;

-- The argument checks of every transition: a refusal (INVALID_INPUT, nothing written) or NULL.
CREATE OR REPLACE FUNCTION leo_transition_args(p_sd_id text, p_session_id text, p_context jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_expected jsonb;
BEGIN
    IF p_sd_id IS NULL OR btrim(p_sd_id) = '' THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_sd_id is required');
    END IF;
    IF length(p_sd_id) > 200 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_sd_id is longer than 200 characters');
    END IF;
    IF p_session_id IS NOT NULL AND (btrim(p_session_id) = '' OR length(p_session_id) > 200) THEN
        RETURN leo_refusal('INVALID_INPUT',
            'p_session_id must be NULL or 1 to 200 characters');
    END IF;
    IF p_context IS NULL OR jsonb_typeof(p_context) <> 'object' THEN
        RETURN leo_refusal('INVALID_INPUT',
            'p_transition_context must be a JSON object with a request_id');
    END IF;
    IF jsonb_typeof(p_context -> 'request_id') IS DISTINCT FROM 'string'
       OR btrim(p_context ->> 'request_id') = '' OR length(p_context ->> 'request_id') > 300 THEN
        RETURN leo_refusal('INVALID_INPUT',
            'p_transition_context.request_id (the idempotency key) must be a non-empty string of at most 300 characters');
    END IF;
    v_expected := p_context -> 'expected_version';
    -- CASE, not OR: SQL does not promise to evaluate OR left to right, and the cast must
    -- only ever see digits.
    IF v_expected IS NOT NULL AND jsonb_typeof(v_expected) <> 'null' AND NOT (CASE
           WHEN jsonb_typeof(v_expected) = 'number' AND (v_expected #>> '{}') ~ '^[0-9]{1,9}$'
           THEN (v_expected #>> '{}')::integer >= 1 ELSE false END) THEN
        RETURN leo_refusal('INVALID_INPUT',
            'p_transition_context.expected_version must be a positive integer',
            jsonb_build_object('expected_version', v_expected));
    END IF;
    IF p_context ? 'gate_summary' AND jsonb_typeof(p_context -> 'gate_summary') <> 'object' THEN
        RETURN leo_refusal('INVALID_INPUT',
            'p_transition_context.gate_summary must be an object');
    END IF;
    -- A malformed gate summary fails closed here, before anything is written; it must not
    -- pass as "not false" or surface later as a failed write of the handoff record.
    IF p_context ? 'gate_summary'
       AND jsonb_typeof(p_context #> '{gate_summary,passed}') IS DISTINCT FROM 'boolean' THEN
        RETURN leo_refusal('INVALID_INPUT',
            'p_transition_context.gate_summary.passed must be true or false');
    END IF;
    IF (p_context #> '{gate_summary,passed}') = 'false'::jsonb THEN
        -- Defence in depth: the orchestrator never sends this, a hand-made call might.
        RETURN leo_refusal('INVALID_INPUT',
            'the gate summary says the gates did not pass; a rejected handoff cannot transition');
    END IF;
    IF jsonb_typeof(p_context #> '{gate_summary,normalized_score}') <> 'null' AND NOT (CASE
           WHEN jsonb_typeof(p_context #> '{gate_summary,normalized_score}') = 'number'
           THEN (p_context #>> '{gate_summary,normalized_score}')::numeric BETWEEN 0 AND 100
           ELSE false END) THEN
        RETURN leo_refusal('INVALID_INPUT',
            'p_transition_context.gate_summary.normalized_score must be a number from 0 to 100',
            jsonb_build_object('normalized_score', p_context #> '{gate_summary,normalized_score}'));
    END IF;
    IF pg_column_size(p_context -> 'gate_summary') > 102400 THEN
        RETURN leo_refusal('INVALID_INPUT',
            'p_transition_context.gate_summary is larger than 100 KB');
    END IF;
    IF p_context ? 'metadata' AND jsonb_typeof(p_context -> 'metadata') <> 'object' THEN
        RETURN leo_refusal('INVALID_INPUT',
            'p_transition_context.metadata must be an object');
    END IF;

    RETURN NULL;
END $$;

-- Step 0 of every transition. Returns either {"early": <result to return as is>} (a refusal,
-- or the first outcome of a repeated request id) or the transition's working
-- state: {"sd_id", "prd_id", "request_id", "session_id", "sd": {...row...}, "context"}.
-- The caller holds the SD's advisory lock and row lock when this returns a working state.
CREATE OR REPLACE FUNCTION leo_transition_begin(
    p_handoff_type text, p_sd_id text, p_prd_id text, p_session_id text, p_context jsonb)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_sd_id      text;
    v_request_id text;
    v_refusal    jsonb;
    v_prd        product_requirements_v2;
    v_sd         strategic_directives_v2;
    v_audit      sd_transition_audit;
BEGIN
    -- Argument checks: every malformed input gets INVALID_INPUT and nothing is written.
    v_refusal := leo_transition_args(p_sd_id, p_session_id, p_context);
    IF v_refusal IS NOT NULL THEN
        RETURN jsonb_build_object('early', v_refusal);
    END IF;
    v_request_id := p_context ->> 'request_id';

    v_sd_id := leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN jsonb_build_object('early', leo_refusal('SD_NOT_FOUND',
            format('SD not found: %s', p_sd_id), jsonb_build_object('sd_id', p_sd_id)));
    END IF;

    IF NOT pg_try_advisory_xact_lock(leo_sd_lock_key(v_sd_id)) THEN
        RETURN jsonb_build_object('early', leo_refusal('CONCURRENT_LOCK',
            format('another transition of %s is in progress; retry shortly', v_sd_id),
            jsonb_build_object('sd_id', v_sd_id)));
    END IF;

    -- The request id is unique across all SDs, so the SD lock alone does not keep two calls
    -- that share it apart: without this lock the second would die on the unique index with a
    -- bare error instead of getting a structured answer.
    IF NOT pg_try_advisory_xact_lock(hashtextextended('leo:request:' || v_request_id, 0)) THEN
        RETURN jsonb_build_object('early', leo_refusal('CONCURRENT_LOCK',
            format('request_id %s is being used by another call right now; retry shortly',
                   v_request_id),
            jsonb_build_object('sd_id', v_sd_id)));
    END IF;

    -- Idempotency: a request id that already ran returns its first outcome, applying nothing.
    SELECT * INTO v_audit FROM sd_transition_audit WHERE request_id = v_request_id;
    IF FOUND THEN
        IF v_audit.sd_id <> v_sd_id OR v_audit.transition_type <> replace(p_handoff_type, '-', '_') THEN
            RETURN jsonb_build_object('early', leo_refusal('INVALID_INPUT',
                format('request_id %s was already used for %s on %s', v_request_id,
                       replace(v_audit.transition_type, '_', '-'), v_audit.sd_id)));
        END IF;
        RETURN jsonb_build_object('early',
            v_audit.result || jsonb_build_object('idempotent_hit', true));
    END IF;
    -- Handoff records share the request id namespace (fn_record_handoff_rejection); one that
    -- recorded a rejection cannot also apply the transition.
    IF EXISTS (SELECT 1 FROM sd_phase_handoffs WHERE request_id = v_request_id) THEN
        RETURN jsonb_build_object('early', leo_refusal('INVALID_INPUT',
            format('request_id %s already recorded a rejected handoff; use a new request id',
                   v_request_id),
            jsonb_build_object('sd_id', v_sd_id)));
    END IF;

    SELECT * INTO v_sd FROM strategic_directives_v2 WHERE id = v_sd_id FOR UPDATE;

    -- The PRD is read under its row lock, in one statement: read first and locked after, a
    -- concurrent change committed in between would go unseen by the precondition check and
    -- then be overwritten.
    IF p_prd_id IS NOT NULL THEN
        SELECT * INTO v_prd FROM product_requirements_v2 WHERE id = p_prd_id FOR UPDATE;
        IF NOT FOUND OR v_prd.sd_id <> v_sd_id THEN
            RETURN jsonb_build_object('early', leo_refusal('INVALID_INPUT',
                format('PRD %s does not belong to %s', p_prd_id, v_sd_id),
                jsonb_build_object('sd_id', v_sd_id, 'prd_id', p_prd_id)));
        END IF;
    ELSE
        SELECT * INTO v_prd FROM product_requirements_v2 WHERE sd_id = v_sd_id FOR UPDATE;
    END IF;

    RETURN jsonb_build_object(
        'sd_id', v_sd_id, 'prd_id', v_prd.id, 'request_id', v_request_id,
        'session_id', p_session_id, 'handoff_type', p_handoff_type,
        'sd', to_jsonb(v_sd), 'prd', to_jsonb(v_prd), 'context', p_context);
END $$;

-- The checks that come after the handoff's own "already done" rule: optimistic version and
-- the session claim. Returns a refusal or NULL.
CREATE OR REPLACE FUNCTION leo_transition_guard(p_state jsonb)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_expected jsonb := p_state #> '{context,expected_version}';
    v_actual   integer := (p_state #>> '{sd,transition_version}')::integer;
    v_claim    claude_sessions;
BEGIN
    IF v_expected IS NOT NULL AND jsonb_typeof(v_expected) = 'number'
       AND (v_expected #>> '{}')::integer <> v_actual THEN
        RETURN leo_refusal('VERSION_CONFLICT',
            format('%s is at transition_version %s, the caller expected %s; reload and retry',
                   p_state ->> 'sd_id', v_actual, v_expected #>> '{}'),
            jsonb_build_object('sd_id', p_state ->> 'sd_id',
                               'expected_version', (v_expected #>> '{}')::integer,
                               'actual_version', v_actual));
    END IF;
    v_claim := leo_live_claim(p_state ->> 'sd_id');
    IF v_claim.session_id IS NOT NULL
       AND v_claim.session_id IS DISTINCT FROM (p_state ->> 'session_id') THEN
        RETURN leo_refusal('CLAIMED_BY_OTHER_SESSION',
            format('%s is claimed by session %s (heartbeat %s s ago); wait for it to release, or for the claim to go stale after 300 s',
                   p_state ->> 'sd_id', v_claim.session_id,
                   extract(epoch FROM now() - v_claim.heartbeat_at)::integer),
            jsonb_build_object('sd_id', p_state ->> 'sd_id', 'claimed_by', v_claim.session_id));
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION leo_invalid_phase(p_state jsonb, p_expected text)
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT leo_refusal('INVALID_PHASE',
        format('%s cannot start from %s / %s; it expects %s',
               p_state ->> 'handoff_type', p_state #>> '{sd,status}', p_state #>> '{sd,current_phase}',
               p_expected),
        jsonb_build_object('sd_id', p_state ->> 'sd_id', 'expected', p_expected,
                           'actual', jsonb_build_object(
                               'status', p_state #>> '{sd,status}',
                               'current_phase', p_state #>> '{sd,current_phase}',
                               'prd_status', p_state #>> '{prd,status}')));
$$;

-- A PRD that is on hold, rejected or cancelled is not overwritten by a handoff: refuse with
-- INVALID_PRD_STATUS, naming the status. Returns a refusal or NULL.
CREATE OR REPLACE FUNCTION leo_prd_status_guard(p_state jsonb)
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT leo_refusal('INVALID_PRD_STATUS',
        format('%s refuses PRD %s of %s: the PRD is %s; a PRD that is on_hold, rejected or cancelled is not overwritten (change its status first)',
               p_state ->> 'handoff_type', p_state ->> 'prd_id', p_state ->> 'sd_id',
               p_state #>> '{prd,status}'),
        jsonb_build_object('sd_id', p_state ->> 'sd_id', 'prd_id', p_state ->> 'prd_id',
                           'prd_status', p_state #>> '{prd,status}'))
    WHERE (p_state #>> '{prd,status}') IN ('on_hold', 'rejected', 'cancelled');
$$;

-- Fixes the audit row's id and the SD's pre-state before the steps run, and returns the state
-- with both ('audit_id', 'pre_state'). The row itself is written once, never updated: completed
-- by leo_transition_complete inside the steps' sub-block, or failed by leo_transition_fail after
-- PostgreSQL rolled that sub-block back. The audit trail is append-only (migration 0004).
CREATE OR REPLACE FUNCTION leo_transition_audit_prepare(p_state jsonb)
RETURNS jsonb LANGUAGE sql VOLATILE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT p_state || jsonb_build_object('audit_id', gen_random_uuid(),
                                         'pre_state', leo_sd_state(p_state ->> 'sd_id'));
$$;

-- The last step of every transition: the handoff record and the completed audit row (the
-- version is bumped by the step's UPDATE of the SD, so the row is written once). Runs inside the steps' sub-block, so a failure here rolls everything back too.
CREATE OR REPLACE FUNCTION leo_transition_complete(
    p_state jsonb, p_audit_id uuid, p_from_phase text, p_to_phase text, p_extra jsonb DEFAULT '{}')
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_handoff_id uuid;
    v_gate       jsonb := coalesce(p_state #> '{context,gate_summary}', '{}');
    v_post       jsonb;
    v_result     jsonb;
    v_pre        jsonb;
    v_version    integer;
BEGIN
    -- The step's own UPDATE of the SD bumped the version (one write of the row, not two);
    -- checked here, so that a step that forgot fails the transition instead of skipping it.
    SELECT transition_version INTO v_version FROM strategic_directives_v2
    WHERE id = p_state ->> 'sd_id';
    IF v_version IS DISTINCT FROM (p_state #>> '{sd,transition_version}')::integer + 1 THEN
        RAISE EXCEPTION 'the % step did not bump transition_version of % (still %)',
            p_state ->> 'handoff_type', p_state ->> 'sd_id', v_version;
    END IF;

    INSERT INTO sd_phase_handoffs (
        sd_id, handoff_type, from_phase, to_phase, status, validation_score, validation_passed,
        validation_details, metadata, request_id, session_id, accepted_at)
    VALUES (
        p_state ->> 'sd_id', p_state ->> 'handoff_type', p_from_phase, p_to_phase, 'accepted',
        (v_gate ->> 'normalized_score')::numeric, true, v_gate,
        coalesce(p_state #> '{context,metadata}', '{}') || jsonb_build_object('audit_id', p_audit_id),
        p_state ->> 'request_id', p_state ->> 'session_id', now())
    RETURNING id INTO v_handoff_id;

    v_post := leo_sd_state(p_state ->> 'sd_id') || coalesce(p_extra, '{}');
    v_pre := p_state -> 'pre_state';
    v_result := leo_transition_result(
        p_state ->> 'handoff_type', p_state ->> 'request_id', p_state ->> 'sd_id',
        p_state #>> '{sd,sd_key}', p_audit_id, v_handoff_id, v_version, v_pre, v_post, p_extra);

    INSERT INTO sd_transition_audit (
        id, sd_id, transition_type, session_id, request_id, pre_state, post_state, status,
        result, handoff_id, completed_at)
    VALUES (
        p_audit_id, p_state ->> 'sd_id', replace(p_state ->> 'handoff_type', '-', '_'),
        p_state ->> 'session_id', p_state ->> 'request_id', v_pre, v_post, 'completed',
        v_result, v_handoff_id, now());
    RETURN v_result;
END $$;

-- Called from a step sub-block's exception handler, after PostgreSQL rolled the steps back.
-- Keeps the audit row as 'failed' with the full error record and returns the refusal.
CREATE OR REPLACE FUNCTION leo_transition_fail(
    p_state jsonb, p_audit_id uuid, p_failed_step text, p_partial jsonb,
    p_sqlstate text, p_message text, p_detail text)
RETURNS jsonb LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_pre     jsonb;
    v_details jsonb;
    v_result  jsonb;
BEGIN
    -- A deadlock or serialization failure is transient, not a failed transition: re-raise it
    -- so that the whole call rolls back and the caller retries (no audit row is written).
    IF p_sqlstate IN ('40P01', '40001') THEN
        RAISE EXCEPTION '% at step "%": %', p_state ->> 'handoff_type', p_failed_step, p_message
            USING ERRCODE = p_sqlstate, DETAIL = coalesce(p_detail, ''),
                  HINT = 'transient conflict with another transaction; nothing was applied, retry';
    END IF;
    v_pre := p_state -> 'pre_state';
    v_details := jsonb_build_object(
        'error_code', p_sqlstate,
        'error_message', p_message,
        'error_detail', p_detail,
        'failed_step', p_failed_step,
        'pre_state', v_pre,
        'partial_state', coalesce(p_partial, '{}'),
        'recovery_action', format(
            'Nothing was applied (all steps rolled back). Fix the cause of SQLSTATE %s at step "%s", '
            'then re-run the %s handoff with a new request id.',
            p_sqlstate, p_failed_step, p_state ->> 'handoff_type'));
    v_result := leo_refusal('TRANSITION_FAILED',
        format('%s failed at step "%s": %s', p_state ->> 'handoff_type', p_failed_step, p_message),
        jsonb_build_object('sd_id', p_state ->> 'sd_id', 'audit_id', p_audit_id,
                           'request_id', p_state ->> 'request_id', 'error_details', v_details));
    INSERT INTO sd_transition_audit (
        id, sd_id, transition_type, session_id, request_id, pre_state, status, error_details,
        result, completed_at)
    VALUES (
        p_audit_id, p_state ->> 'sd_id', replace(p_state ->> 'handoff_type', '-', '_'),
        p_state ->> 'session_id', p_state ->> 'request_id', v_pre, 'failed', v_details,
        v_result, now());
    RETURN v_result;
END $$;

-- The one-statement path's error handler (every fn_atomic_*: the handoff's one data-modifying
-- statement runs in a sub-block). A deadlock or serialization failure is transient, not a
-- failed transition: re-raised, naming the step whose table the statement was waiting for
-- (`p_steps`: {table, step} pairs in step order), so that the whole call rolls back and the
-- caller retries. Anything else returns, and the step-by-step path takes over.
CREATE OR REPLACE FUNCTION leo_transition_transient(
    p_handoff_type text, p_steps text[], p_sqlstate text, p_message text, p_detail text,
    p_error_context text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_pair text[];
    v_step text;
BEGIN
    IF p_sqlstate NOT IN ('40P01', '40001') THEN
        RETURN;
    END IF;
    FOREACH v_pair SLICE 1 IN ARRAY p_steps LOOP
        IF strpos(coalesce(p_error_context, ''), format('relation "%s"', v_pair[1])) > 0 THEN
            v_step := v_pair[2];
            EXIT;
        END IF;
    END LOOP;
    RAISE EXCEPTION '% at step "%": %', p_handoff_type,
        coalesce(v_step, 'the transition statement'), p_message
        USING ERRCODE = p_sqlstate, DETAIL = coalesce(p_detail, ''),
              HINT = 'transient conflict with another transaction; nothing was applied, retry';
END $$;
