"""LEO's vocabulary: handoff types, refusal codes, search attributes, snapshots, verdicts, gate
outcomes, the workflow and update payloads, and the spec of a new SD.

The innermost layer. It imports neither temporalio nor asyncpg, so workflows, activities, the
database layer, the CLI and client code in any process can share one definition of each list.
"""
