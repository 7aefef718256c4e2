"""LEO's Temporal search attributes: names and types, registered once per namespace.

Every handoff and lifecycle sets them, so `temporal workflow list --query "LeoSdId='SD-1'"` and
the Web UI's filters find an SD's workflows. Search attributes are never encrypted: keep
secrets out of them.
"""

from __future__ import annotations

SD_ID = "LeoSdId"
SD_TYPE = "LeoSdType"
HANDOFF_TYPE = "LeoHandoffType"
OUTCOME = "LeoOutcome"
SCORE = "LeoScore"

# name -> Temporal's type name, as `temporal operator search-attribute create --type` takes it.
SEARCH_ATTRIBUTES: dict[str, str] = {
    SD_ID: "Keyword",
    SD_TYPE: "Keyword",
    HANDOFF_TYPE: "Keyword",
    OUTCOME: "Keyword",
    SCORE: "Double",
}
