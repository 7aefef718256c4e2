-- Behavioural doubles of the EHG_Engineer triggers that decide a transition's outcome. Written
-- for these tests from the documented behaviour (trigger names, timing, what each allows and
-- refuses), not from their code: the same decisions, in our own SQL.

-- The one list of trusted handoff actors: may the actor create a handoff at all, and may it do
-- so without holding the SD's claim? Unknown actors get (false, false). An owner who adopts LEO
-- adds the LEO actor here.
CREATE FUNCTION handoff_actor_policy(p_created_by text)
RETURNS TABLE (may_create boolean, skips_claim_check boolean)
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(bool_or(a.creates), false), coalesce(bool_or(a.skips), false)
    FROM (VALUES ('UNIFIED-HANDOFF-SYSTEM', true, false),
                 ('SYSTEM_MIGRATION', true, true),
                 ('ADMIN_OVERRIDE', true, true),
                 ('ORCHESTRATOR_AUTO_COMPLETE', true, true)) AS a(actor, creates, skips)
    WHERE a.actor = p_created_by;
$$;

-- BEFORE INSERT on handoffs: only trusted actors create handoff rows; every attempt is logged.
CREATE FUNCTION enforce_handoff_system() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_ok boolean := (SELECT may_create FROM handoff_actor_policy(coalesce(NEW.created_by, '')));
BEGIN
    INSERT INTO handoff_audit_log (attempted_by, sd_id, handoff_type, from_phase, to_phase,
                                   blocked, block_reason, request_metadata)
    VALUES (coalesce(NEW.created_by, 'NULL'), NEW.sd_id, NEW.handoff_type, NEW.from_phase,
            NEW.to_phase, NOT v_ok,
            CASE WHEN NOT v_ok THEN 'created_by ' || coalesce(NEW.created_by, 'NULL') || ' is not a trusted handoff actor' END,
            jsonb_build_object('status', NEW.status));
    IF NOT v_ok THEN
        RAISE EXCEPTION 'HANDOFF_BYPASS_BLOCKED: handoff rows are created by the handoff system only (created_by %)',
            coalesce(NEW.created_by, 'NULL');
    END IF;
    RETURN NEW;
END $$;

-- BEFORE INSERT on handoffs: the SD must be claimed (is_working_on) unless the row documents a
-- rejection or the actor skips the claim check.
CREATE FUNCTION enforce_is_working_on_for_handoffs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_working boolean;
BEGIN
    IF current_setting('leo.bypass_working_on_check', true) = 'true' THEN
        RETURN NEW;
    END IF;
    IF (SELECT skips_claim_check FROM handoff_actor_policy(NEW.created_by)) THEN
        RETURN NEW;
    END IF;
    IF NEW.status = 'rejected' THEN
        RETURN NEW;
    END IF;
    SELECT is_working_on INTO v_working FROM strategic_directives_v2 WHERE id = NEW.sd_id;
    IF FOUND AND v_working IS NOT TRUE THEN
        RAISE EXCEPTION 'LEO Protocol Violation: Cannot create handoff for SD without active session claim (SD %, handoff %)',
            NEW.sd_id, NEW.handoff_type;
    END IF;
    RETURN NEW;
END $$;

-- BEFORE INSERT OR UPDATE on handoffs: an accepted handoff carries all seven elements.
CREATE FUNCTION auto_validate_handoff() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'accepted' THEN
        IF length(coalesce(NEW.executive_summary, '')) < 50 THEN
            RAISE EXCEPTION 'Handoff validation failed: executive_summary must be at least 50 characters';
        END IF;
        IF btrim(coalesce(NEW.deliverables_manifest, '')) = '' OR btrim(coalesce(NEW.key_decisions, '')) = ''
           OR btrim(coalesce(NEW.known_issues, '')) = '' OR btrim(coalesce(NEW.resource_utilization, '')) = ''
           OR btrim(coalesce(NEW.action_items, '')) = '' OR btrim(coalesce(NEW.completeness_report, '')) = '' THEN
            RAISE EXCEPTION 'Handoff validation failed: all 7 handoff elements are required';
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION auto_update_handoff_accepted_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'accepted' AND OLD.status IS DISTINCT FROM 'accepted' THEN
        NEW.accepted_at := coalesce(NEW.accepted_at, localtimestamp);
    END IF;
    RETURN NEW;
END $$;

CREATE FUNCTION auto_update_handoff_rejected_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'rejected' AND OLD.status IS DISTINCT FROM 'rejected' THEN
        NEW.rejected_at := coalesce(NEW.rejected_at, localtimestamp);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER enforce_handoff_creation BEFORE INSERT ON sd_phase_handoffs
    FOR EACH ROW EXECUTE FUNCTION enforce_handoff_system();
CREATE TRIGGER trg_enforce_is_working_on_handoffs BEFORE INSERT ON sd_phase_handoffs
    FOR EACH ROW EXECUTE FUNCTION enforce_is_working_on_for_handoffs();
CREATE TRIGGER validate_handoff_trigger BEFORE INSERT OR UPDATE ON sd_phase_handoffs
    FOR EACH ROW EXECUTE FUNCTION auto_validate_handoff();
CREATE TRIGGER trigger_handoff_accepted_at BEFORE UPDATE ON sd_phase_handoffs
    FOR EACH ROW EXECUTE FUNCTION auto_update_handoff_accepted_at();
CREATE TRIGGER trigger_handoff_rejected_at BEFORE UPDATE ON sd_phase_handoffs
    FOR EACH ROW EXECUTE FUNCTION auto_update_handoff_rejected_at();

-- Their derived progress, simplified: LEAD 20 (the SD is under way), PLAN 20 (a PRD past
-- draft), EXEC 30 (an accepted EXEC-TO-PLAN), VERIFY 15 (an accepted PLAN-TO-LEAD and every
-- story validated or passing), FINAL 15 (a LEAD-FINAL-APPROVAL record).
CREATE FUNCTION calculate_sd_progress(p_sd_id varchar) RETURNS integer
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_sd       strategic_directives_v2;
    v_progress integer := 0;
BEGIN
    SELECT * INTO v_sd FROM strategic_directives_v2 WHERE id = p_sd_id;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    IF v_sd.status IN ('active', 'in_progress', 'pending_approval', 'completed', 'review') THEN
        v_progress := v_progress + 20;
    END IF;
    IF EXISTS (SELECT 1 FROM product_requirements_v2 p
               WHERE (p.sd_id = v_sd.id OR p.directive_id = v_sd.id)
                 AND p.status IN ('approved', 'in_progress', 'testing', 'verification', 'completed')) THEN
        v_progress := v_progress + 20;
    END IF;
    IF EXISTS (SELECT 1 FROM sd_phase_handoffs h WHERE h.sd_id = v_sd.id
               AND h.handoff_type = 'EXEC-TO-PLAN' AND h.status = 'accepted') THEN
        v_progress := v_progress + 30;
    END IF;
    IF EXISTS (SELECT 1 FROM sd_phase_handoffs h WHERE h.sd_id = v_sd.id
               AND h.handoff_type = 'PLAN-TO-LEAD' AND h.status = 'accepted')
       AND NOT EXISTS (SELECT 1 FROM user_stories s WHERE s.sd_id = v_sd.id
                       AND s.validation_status IS DISTINCT FROM 'validated'
                       AND s.e2e_test_status IS DISTINCT FROM 'passing') THEN
        v_progress := v_progress + 15;
    END IF;
    IF EXISTS (SELECT 1 FROM leo_handoff_executions e WHERE e.sd_id = v_sd.id
               AND e.handoff_type = 'LEAD-FINAL-APPROVAL' AND e.status = 'accepted')
       OR EXISTS (SELECT 1 FROM sd_phase_handoffs h WHERE h.sd_id = v_sd.id
                  AND h.handoff_type = 'LEAD-FINAL-APPROVAL' AND h.status = 'accepted') THEN
        v_progress := v_progress + 15;
    END IF;
    RETURN v_progress;
END $$;

CREATE FUNCTION auto_calculate_progress() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.progress_percentage := calculate_sd_progress(NEW.id);
    NEW.updated_at := localtimestamp;
    RETURN NEW;
END $$;

-- A phase change into EXEC needs an accepted PLAN-TO-EXEC from the last 24 hours; completion
-- needs at least one accepted handoff.
CREATE FUNCTION enforce_handoff_on_phase_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.current_phase = 'EXEC' AND OLD.current_phase IS DISTINCT FROM 'EXEC'
       AND NOT EXISTS (SELECT 1 FROM sd_phase_handoffs h WHERE h.sd_id = NEW.id
                       AND h.handoff_type = 'PLAN-TO-EXEC' AND h.status = 'accepted'
                       AND h.created_at > localtimestamp - interval '24 hours') THEN
        RAISE EXCEPTION 'Phase transition blocked: % cannot enter EXEC without an accepted PLAN-TO-EXEC handoff',
            NEW.id;
    END IF;
    IF NEW.status = 'completed' AND OLD.status IS DISTINCT FROM 'completed'
       AND NOT EXISTS (SELECT 1 FROM sd_phase_handoffs h WHERE h.sd_id = NEW.id
                       AND h.status = 'accepted') THEN
        RAISE EXCEPTION 'Phase transition blocked: % cannot complete without an accepted handoff', NEW.id;
    END IF;
    RETURN NEW;
END $$;

-- Completion needs the computed progress at 100.
CREATE FUNCTION enforce_progress_on_completion() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_progress integer;
BEGIN
    IF NEW.status = 'completed' AND OLD.status IS DISTINCT FROM 'completed' THEN
        IF current_setting('leo.bypass_completion_check', true) = 'true' THEN
            RETURN NEW;
        END IF;
        v_progress := calculate_sd_progress(NEW.id);
        IF v_progress < 100 THEN
            RAISE EXCEPTION 'LEO Protocol Violation: Cannot mark SD % complete, progress is % percent (needs 100)',
                NEW.id, v_progress;
        END IF;
    END IF;
    RETURN NEW;
END $$;

-- Leaving LEAD_APPROVAL needs the quality check done.
CREATE FUNCTION enforce_sd_quality_on_advancement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.current_phase = 'LEAD_APPROVAL' AND NEW.current_phase IS DISTINCT FROM 'LEAD_APPROVAL'
       AND NEW.quality_checked IS NOT TRUE THEN
        RAISE EXCEPTION 'SD quality gate: % cannot leave LEAD_APPROVAL before quality_checked is set', NEW.id;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER auto_calculate_progress_trigger BEFORE UPDATE ON strategic_directives_v2
    FOR EACH ROW EXECUTE FUNCTION auto_calculate_progress();
CREATE TRIGGER enforce_handoff_trigger BEFORE UPDATE ON strategic_directives_v2
    FOR EACH ROW EXECUTE FUNCTION enforce_handoff_on_phase_transition();
CREATE TRIGGER enforce_progress_trigger BEFORE UPDATE ON strategic_directives_v2
    FOR EACH ROW EXECUTE FUNCTION enforce_progress_on_completion();
CREATE TRIGGER trg_enforce_sd_quality_advancement BEFORE UPDATE ON strategic_directives_v2
    FOR EACH ROW EXECUTE FUNCTION enforce_sd_quality_on_advancement();

-- Sub-agent evidence with control characters is refused.
CREATE FUNCTION reject_control_chars_in_subagent_evidence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(NEW.detailed_analysis, '') ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]'
       OR coalesce(NEW.justification, '') ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]'
       OR concat(NEW.critical_issues::text, NEW.warnings::text, NEW.recommendations::text)
              ~ '\\u00(0[0-8bcef]|1[0-9a-f]|7f)' THEN
        RAISE EXCEPTION 'sub-agent evidence contains control characters (%, %)', NEW.sub_agent_code, NEW.sd_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER trg_reject_control_chars BEFORE INSERT OR UPDATE ON sub_agent_execution_results
    FOR EACH ROW EXECUTE FUNCTION reject_control_chars_in_subagent_evidence();

-- A session's claim is mirrored onto the SD's flags.
CREATE FUNCTION sync_is_working_on_with_session() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.sd_key IS NOT DISTINCT FROM NEW.sd_key AND OLD.status IS NOT DISTINCT FROM NEW.status THEN
        RETURN NEW;
    END IF;
    IF OLD.sd_key IS NOT NULL THEN
        UPDATE strategic_directives_v2
        SET is_working_on = false, claiming_session_id = NULL, active_session_id = NULL
        WHERE sd_key = OLD.sd_key AND claiming_session_id IS NOT DISTINCT FROM OLD.session_id;
    END IF;
    IF NEW.sd_key IS NOT NULL AND NEW.status IN ('active', 'idle') THEN
        UPDATE strategic_directives_v2
        SET is_working_on = true, claiming_session_id = NEW.session_id, active_session_id = NEW.session_id
        WHERE sd_key = NEW.sd_key;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER sync_is_working_on_trigger AFTER UPDATE ON claude_sessions
    FOR EACH ROW EXECUTE FUNCTION sync_is_working_on_with_session();
