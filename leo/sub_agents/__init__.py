"""Sub-agents: selection, executors, built-in rules and result aggregation."""
