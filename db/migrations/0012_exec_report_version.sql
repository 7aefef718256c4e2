-- Issue 17 item 3: EXEC's report is gate evidence and bumps the SD's transition_version, like
-- a transition or an edit (fn_update_sd). The version the report left the SD at, so that every
-- version is accounted for by exactly one recorded write: a completed audit row (pre -> post),
-- an sd_changes row (version_before -> version_after) or a report (transition_version - 1 ->
-- transition_version). NULL for reports recorded before, which did not bump it.
ALTER TABLE sd_exec_reports ADD COLUMN transition_version integer CHECK (transition_version > 1);
