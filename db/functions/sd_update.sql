-- Edits an SD's content (title, scope, success criteria, PRD, stories, metadata, ...) without
-- touching what transitions own, in one transaction, and records the edit in sd_changes.
--
-- p_changes: {"sd": {<column>: <new value>, ...},
--             "prd": {<column>: <new value>, ...},          -- creates the PRD if it has none
--             "stories": [{"story_key": ..., <column>: <new value>, ...}, ...]}  -- upsert by key
-- Only the values given are written, and only those that differ are recorded. current_phase,
-- status, transition_version (and the other columns transitions and claims write) are refused
-- with TRANSITION_OWNED_FIELD; so are the status of an existing PRD or story.
--
-- sd_type is refused (TRANSITION_OWNED_FIELD) once LEAD-TO-PLAN was accepted: it sets the
-- required sub-agents and the gate threshold. The change record carries the declared p_actor
-- and the database login (sd_changes.db_role, session_user).
--
-- Like a transition it takes the SD's advisory lock (CONCURRENT_LOCK while a transition runs)
-- and checks p_expected_version (VERSION_CONFLICT). An edit that changes something bumps
-- transition_version: a handoff whose gates judged the content before the edit then fails
-- with VERSION_CONFLICT at commit instead of moving the SD on stale evidence, and two
-- concurrent edits that both read version N cannot both apply. Idempotent on p_request_id.
CREATE OR REPLACE FUNCTION fn_update_sd(
    p_sd_id text, p_changes jsonb, p_actor text,
    p_expected_version integer DEFAULT NULL, p_request_id text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    c_sd_fields    CONSTANT text[] := ARRAY['title', 'description', 'scope', 'rationale',
        'category', 'sd_type', 'priority', 'intensity_level', 'target_application',
        'success_criteria', 'success_metrics', 'metadata'];
    c_prd_fields   CONSTANT text[] := ARRAY['id', 'title', 'status', 'executive_summary',
        'functional_requirements', 'test_scenarios', 'metadata'];
    c_story_fields CONSTANT text[] := ARRAY['story_key', 'title', 'acceptance_criteria',
        'status', 'e2e_test_path'];
    c_owned        CONSTANT text[] := ARRAY['current_phase', 'status', 'transition_version',
        'progress_percentage', 'is_working_on', 'active_session_id', 'claiming_session_id',
        'completion_date', 'phase', 'progress', 'validation_status', 'e2e_test_status',
        'implementation_status', 'completed_by', 'completed_at'];
    v_sd_id    text;
    v_sd       strategic_directives_v2;
    v_prd      product_requirements_v2;
    v_story    user_stories;
    v_set      jsonb;
    v_item     jsonb;
    v_key      text;
    v_changes  jsonb := '{}';
    v_change   uuid;
    v_version  integer;
    v_result   jsonb;
    v_prior    jsonb;
BEGIN
    -- Argument checks: INVALID_INPUT and nothing written.
    IF p_actor IS NULL OR length(btrim(p_actor)) NOT BETWEEN 1 AND 200 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_actor (who makes the change) must be 1 to 200 characters');
    END IF;
    IF p_request_id IS NOT NULL AND length(p_request_id) NOT BETWEEN 1 AND 300 THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_request_id must be NULL or 1 to 300 characters');
    END IF;
    IF p_changes IS NULL OR jsonb_typeof(p_changes) <> 'object' THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_changes must be a JSON object with "sd", "prd" and/or "stories"');
    END IF;
    SELECT string_agg(k, ', ') INTO v_key FROM jsonb_object_keys(p_changes) k
        WHERE k NOT IN ('sd', 'prd', 'stories');
    IF v_key IS NOT NULL THEN
        RETURN leo_refusal('INVALID_INPUT', format('p_changes has unknown sections: %s (allowed: sd, prd, stories)', v_key));
    END IF;
    IF (p_changes ? 'sd' AND jsonb_typeof(p_changes -> 'sd') <> 'object')
       OR (p_changes ? 'prd' AND jsonb_typeof(p_changes -> 'prd') <> 'object')
       OR (p_changes ? 'stories' AND jsonb_typeof(p_changes -> 'stories') <> 'array') THEN
        RETURN leo_refusal('INVALID_INPUT', 'p_changes.sd and .prd must be objects, .stories an array');
    END IF;
    -- Fields that only transitions (and claims) change: named, refused, nothing written.
    SELECT string_agg(DISTINCT k, ', ') INTO v_key FROM (
        SELECT 'sd.' || k AS k FROM jsonb_object_keys(coalesce(p_changes -> 'sd', '{}')) k
            WHERE k = ANY (c_owned)
        UNION ALL SELECT 'prd.' || k FROM jsonb_object_keys(coalesce(p_changes -> 'prd', '{}')) k
            WHERE k = ANY (c_owned) AND k <> 'status'
        UNION ALL SELECT 'stories[].' || k FROM jsonb_array_elements(coalesce(p_changes -> 'stories', '[]')) s,
            jsonb_object_keys(CASE WHEN jsonb_typeof(s) = 'object' THEN s ELSE '{}' END) k
            WHERE k = ANY (c_owned) AND k <> 'status') owned;
    IF v_key IS NOT NULL THEN
        RETURN leo_refusal('TRANSITION_OWNED_FIELD',
            format('%s changes only through transitions (handoffs); nothing was changed', v_key));
    END IF;
    SELECT string_agg(k, ', ') INTO v_key FROM (
        SELECT 'sd.' || k AS k FROM jsonb_object_keys(coalesce(p_changes -> 'sd', '{}')) k
            WHERE NOT k = ANY (c_sd_fields)
        UNION ALL SELECT 'prd.' || k FROM jsonb_object_keys(coalesce(p_changes -> 'prd', '{}')) k
            WHERE NOT k = ANY (c_prd_fields)
        UNION ALL SELECT 'stories[].' || k FROM jsonb_array_elements(coalesce(p_changes -> 'stories', '[]')) s,
            jsonb_object_keys(CASE WHEN jsonb_typeof(s) = 'object' THEN s ELSE '{}' END) k
            WHERE NOT k = ANY (c_story_fields)) unknown;
    IF v_key IS NOT NULL THEN
        RETURN leo_refusal('INVALID_INPUT', format('unknown or unchangeable fields: %s', v_key));
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(p_changes -> 'stories', '[]')) s
               WHERE jsonb_typeof(s) <> 'object' OR jsonb_typeof(s -> 'story_key') IS DISTINCT FROM 'string') THEN
        RETURN leo_refusal('INVALID_INPUT', 'every entry of p_changes.stories must be an object with a story_key');
    END IF;

    v_sd_id := leo_resolve_sd_id(p_sd_id);
    IF v_sd_id IS NULL THEN
        RETURN leo_refusal('SD_NOT_FOUND', format('SD not found: %s', p_sd_id),
                           jsonb_build_object('sd_id', p_sd_id));
    END IF;
    IF NOT pg_try_advisory_xact_lock(leo_sd_lock_key(v_sd_id)) THEN
        RETURN leo_refusal('CONCURRENT_LOCK',
            format('a transition or another edit of %s is in progress; retry shortly', v_sd_id),
            jsonb_build_object('sd_id', v_sd_id));
    END IF;
    IF p_request_id IS NOT NULL THEN
        SELECT result INTO v_prior FROM sd_changes WHERE request_id = p_request_id;
        IF FOUND THEN
            RETURN v_prior || jsonb_build_object('idempotent_hit', true);
        END IF;
    END IF;
    SELECT * INTO v_sd FROM strategic_directives_v2 WHERE id = v_sd_id FOR UPDATE;
    IF p_expected_version IS NOT NULL AND p_expected_version <> v_sd.transition_version THEN
        RETURN leo_refusal('VERSION_CONFLICT',
            format('%s is at transition_version %s, the caller expected %s: it changed since it was read; reload and retry',
                   v_sd_id, v_sd.transition_version, p_expected_version),
            jsonb_build_object('sd_id', v_sd_id, 'expected_version', p_expected_version,
                               'actual_version', v_sd.transition_version));
    END IF;
    -- The SD's type chooses the sub-agents every later handoff requires and its gate threshold
    -- (security: TESTING and SECURITY, 90; docs: DOCMON, 60). Once LEAD approved the SD for
    -- planning (LEAD-TO-PLAN accepted, the SD left LEAD) an edit must not lower that bar:
    -- the type is then refused like a transition-owned field. To change it, a new SD goes
    -- through LEAD.
    IF p_changes -> 'sd' ? 'sd_type' AND (p_changes #>> '{sd,sd_type}') IS DISTINCT FROM v_sd.sd_type
       AND (v_sd.current_phase NOT IN ('LEAD', 'LEAD_APPROVAL')
            OR EXISTS (SELECT 1 FROM sd_phase_handoffs WHERE sd_id = v_sd_id
                       AND handoff_type = 'LEAD-TO-PLAN' AND status = 'accepted')) THEN
        RETURN leo_refusal('TRANSITION_OWNED_FIELD',
            format('sd.sd_type of %s is fixed since LEAD-TO-PLAN was accepted (it is at %s): the type sets the required sub-agents and the gate threshold, so changing %s to %s would change the bar LEAD approved; nothing was changed',
                   v_sd_id, v_sd.current_phase, v_sd.sd_type, p_changes #>> '{sd,sd_type}'),
            jsonb_build_object('sd_id', v_sd_id, 'field', 'sd.sd_type'));
    END IF;
    SELECT * INTO v_prd FROM product_requirements_v2 WHERE sd_id = v_sd_id FOR UPDATE;

    -- Every refusal comes before the first write: a RETURN inside the block below would keep
    -- what the block had written.
    v_set := coalesce(p_changes -> 'prd', '{}');
    IF v_prd.id IS NOT NULL AND v_set ? 'id' AND v_set ->> 'id' IS DISTINCT FROM v_prd.id THEN
        RETURN leo_refusal('INVALID_INPUT', format('the PRD''s id (%s) never changes', v_prd.id));
    END IF;
    IF v_prd.id IS NOT NULL AND v_set ? 'status' AND v_set ->> 'status' IS DISTINCT FROM v_prd.status THEN
        RETURN leo_refusal('TRANSITION_OWNED_FIELD',
            'prd.status changes only through transitions (handoffs); nothing was changed');
    END IF;
    FOR v_set IN SELECT * FROM jsonb_array_elements(coalesce(p_changes -> 'stories', '[]')) LOOP
        SELECT * INTO v_story FROM user_stories WHERE story_key = v_set ->> 'story_key' FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        IF v_story.sd_id <> v_sd_id THEN
            RETURN leo_refusal('INVALID_INPUT', format('story %s belongs to another SD (%s)',
                                                       v_story.story_key, v_story.sd_id));
        END IF;
        IF v_set ? 'status' AND v_set ->> 'status' IS DISTINCT FROM v_story.status THEN
            RETURN leo_refusal('TRANSITION_OWNED_FIELD', format(
                'the status of story %s changes only through transitions (handoffs); nothing was changed',
                v_story.story_key));
        END IF;
    END LOOP;

    BEGIN
        -- The SD: record each given field that differs, then write them all at once.
        v_set := coalesce(p_changes -> 'sd', '{}');
        SELECT coalesce(jsonb_object_agg('sd.' || key, jsonb_build_object('from', to_jsonb(v_sd) -> key, 'to', value)), '{}')
            INTO v_item FROM jsonb_each(v_set) WHERE (to_jsonb(v_sd) -> key) IS DISTINCT FROM value;
        v_changes := v_changes || v_item;
        IF v_item <> '{}' THEN
            UPDATE strategic_directives_v2 SET
                title = CASE WHEN v_set ? 'title' THEN v_set ->> 'title' ELSE title END,
                description = CASE WHEN v_set ? 'description' THEN v_set ->> 'description' ELSE description END,
                scope = CASE WHEN v_set ? 'scope' THEN v_set ->> 'scope' ELSE scope END,
                rationale = CASE WHEN v_set ? 'rationale' THEN v_set ->> 'rationale' ELSE rationale END,
                category = CASE WHEN v_set ? 'category' THEN v_set ->> 'category' ELSE category END,
                sd_type = CASE WHEN v_set ? 'sd_type' THEN v_set ->> 'sd_type' ELSE sd_type END,
                priority = CASE WHEN v_set ? 'priority' THEN v_set ->> 'priority' ELSE priority END,
                intensity_level = CASE WHEN v_set ? 'intensity_level' THEN v_set ->> 'intensity_level' ELSE intensity_level END,
                target_application = CASE WHEN v_set ? 'target_application' THEN v_set ->> 'target_application' ELSE target_application END,
                success_criteria = CASE WHEN v_set ? 'success_criteria' THEN v_set -> 'success_criteria' ELSE success_criteria END,
                success_metrics = CASE WHEN v_set ? 'success_metrics' THEN v_set -> 'success_metrics' ELSE success_metrics END,
                metadata = CASE WHEN v_set ? 'metadata' THEN v_set -> 'metadata' ELSE metadata END
            WHERE id = v_sd_id;
        END IF;

        -- The PRD: updated in place, or created when the SD has none.
        v_set := coalesce(p_changes -> 'prd', '{}');
        IF v_set <> '{}' AND v_prd.id IS NULL THEN
            INSERT INTO product_requirements_v2 (id, sd_id, title, status, executive_summary,
                functional_requirements, test_scenarios, metadata)
            VALUES (coalesce(v_set ->> 'id', 'PRD-' || v_sd.sd_key), v_sd_id, v_set ->> 'title',
                coalesce(v_set ->> 'status', 'draft'), coalesce(v_set ->> 'executive_summary', ''),
                coalesce(v_set -> 'functional_requirements', '[]'), coalesce(v_set -> 'test_scenarios', '[]'),
                coalesce(v_set -> 'metadata', '{}'))
            RETURNING * INTO v_prd;
            v_changes := v_changes || jsonb_build_object('prd', jsonb_build_object('from', NULL, 'to', to_jsonb(v_prd)
                - ARRAY['sd_id', 'created_at', 'updated_at', 'phase', 'progress']));
        ELSIF v_set <> '{}' THEN
            SELECT coalesce(jsonb_object_agg('prd.' || key, jsonb_build_object('from', to_jsonb(v_prd) -> key, 'to', value)), '{}')
                INTO v_item FROM jsonb_each(v_set - 'id' - 'status')
                WHERE (to_jsonb(v_prd) -> key) IS DISTINCT FROM value;
            v_changes := v_changes || v_item;
            UPDATE product_requirements_v2 SET
                title = CASE WHEN v_set ? 'title' THEN v_set ->> 'title' ELSE title END,
                executive_summary = CASE WHEN v_set ? 'executive_summary' THEN v_set ->> 'executive_summary' ELSE executive_summary END,
                functional_requirements = CASE WHEN v_set ? 'functional_requirements' THEN v_set -> 'functional_requirements' ELSE functional_requirements END,
                test_scenarios = CASE WHEN v_set ? 'test_scenarios' THEN v_set -> 'test_scenarios' ELSE test_scenarios END,
                metadata = CASE WHEN v_set ? 'metadata' THEN v_set -> 'metadata' ELSE metadata END,
                updated_at = now()
            WHERE id = v_prd.id AND v_item <> '{}';
        END IF;

        -- Stories, by story_key: updated when the SD has it, added when nobody has it.
        FOR v_set IN SELECT * FROM jsonb_array_elements(coalesce(p_changes -> 'stories', '[]')) LOOP
            v_key := v_set ->> 'story_key';
            SELECT * INTO v_story FROM user_stories WHERE story_key = v_key FOR UPDATE;
            IF FOUND AND v_story.sd_id <> v_sd_id THEN
                -- Inserted for another SD since the check above (READ COMMITTED): never
                -- edited under this SD's change record.
                RAISE EXCEPTION 'story % belongs to another SD (%)', v_key, v_story.sd_id
                    USING ERRCODE = 'check_violation';
            END IF;
            IF NOT FOUND THEN
                INSERT INTO user_stories (story_key, sd_id, prd_id, title, acceptance_criteria, status, e2e_test_path)
                VALUES (v_key, v_sd_id, v_prd.id, v_set ->> 'title', coalesce(v_set -> 'acceptance_criteria', '[]'),
                        coalesce(v_set ->> 'status', 'draft'), v_set ->> 'e2e_test_path')
                RETURNING * INTO v_story;
                v_changes := v_changes || jsonb_build_object('stories.' || v_key, jsonb_build_object(
                    'from', NULL, 'to', jsonb_build_object('title', v_story.title,
                    'acceptance_criteria', v_story.acceptance_criteria, 'status', v_story.status,
                    'e2e_test_path', v_story.e2e_test_path)));
                CONTINUE;
            END IF;
            SELECT coalesce(jsonb_object_agg('stories.' || v_key || '.' || key,
                       jsonb_build_object('from', to_jsonb(v_story) -> key, 'to', value)), '{}')
                INTO v_item FROM jsonb_each(v_set - 'story_key' - 'status')
                WHERE (to_jsonb(v_story) -> key) IS DISTINCT FROM value;
            v_changes := v_changes || v_item;
            UPDATE user_stories SET
                title = CASE WHEN v_set ? 'title' THEN v_set ->> 'title' ELSE title END,
                acceptance_criteria = CASE WHEN v_set ? 'acceptance_criteria' THEN v_set -> 'acceptance_criteria' ELSE acceptance_criteria END,
                e2e_test_path = CASE WHEN v_set ? 'e2e_test_path' THEN v_set ->> 'e2e_test_path' ELSE e2e_test_path END,
                updated_at = now()
            WHERE id = v_story.id AND v_item <> '{}';
        END LOOP;
    EXCEPTION
        WHEN check_violation OR not_null_violation OR unique_violation OR invalid_text_representation
             OR foreign_key_violation OR datatype_mismatch THEN
            -- Everything this block wrote is rolled back.
            RETURN leo_refusal('INVALID_INPUT', format('the database refused the change: %s', SQLERRM),
                               jsonb_build_object('sd_id', v_sd_id));
    END;

    IF v_changes = '{}' THEN
        RETURN jsonb_build_object('success', true, 'code', 'OK', 'sd_id', v_sd_id,
            'sd_key', v_sd.sd_key, 'change_id', NULL, 'changes', '{}'::jsonb,
            'transition_version', v_sd.transition_version, 'idempotent_hit', false);
    END IF;
    UPDATE strategic_directives_v2 SET transition_version = transition_version + 1
        WHERE id = v_sd_id RETURNING transition_version INTO v_version;
    v_change := gen_random_uuid();
    v_result := jsonb_build_object('success', true, 'code', 'OK', 'sd_id', v_sd_id,
        'sd_key', v_sd.sd_key, 'change_id', v_change, 'changes', v_changes, 'actor', p_actor,
        'changed_at', now(), 'transition_version', v_version, 'idempotent_hit', false);
    INSERT INTO sd_changes (id, sd_id, actor, changes, version_before, version_after, request_id, result)
    VALUES (v_change, v_sd_id, p_actor, v_changes, v_sd.transition_version, v_version, p_request_id, v_result);
    RETURN v_result;
END $$;
