"""What a new strategic directive is made of, as `leo sd create` and the demo read it.

The input vocabulary for creating an SD with its PRD and user stories: validated here with the
field's name before anything reaches the database (`db.sds.create_sd` writes it).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

from leo.domain.storable import StorableModel

# The same rules as the CHECK constraints in db/migrations/0001_schema.sql, so a bad file is
# refused with the field's name before anything reaches the database.
SD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
STORY_KEY_PATTERN = r"^[A-Z0-9-]+:US-[0-9]{3,}$"
STORY_KEY_PREFIX_PATTERN = r"^[A-Z0-9-]+$"

SdType = Literal[
    "feature",
    "bugfix",
    "database",
    "infrastructure",
    "security",
    "refactor",
    "documentation",
    "orchestrator",
    "performance",
    "enhancement",
    "docs",
    "discovery_spike",
    "implementation",
    "ux_debt",
    "uat",
]
Priority = Literal["critical", "high", "medium", "low"]
IntensityLevel = Literal["cosmetic", "structural", "architectural"]
PrdStatus = Literal[
    "draft",
    "planning",
    "in_progress",
    "testing",
    "verification",
    "approved",
    "completed",
    "archived",
    "rejected",
    "on_hold",
    "cancelled",
]
StoryStatus = Literal["draft", "ready", "in_progress", "testing", "completed", "blocked"]


def _check_sd_id(value: str) -> str:
    if not re.match(SD_ID_PATTERN, value):
        raise ValueError(
            "must be 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return value


def _check_story_key(value: str) -> str:
    if not re.match(STORY_KEY_PATTERN, value):
        raise ValueError("must look like SD-KEY:US-001 (upper case, ':US-' and 3 or more digits)")
    return value


SdId = Annotated[str, AfterValidator(_check_sd_id)]
StoryKey = Annotated[str, AfterValidator(_check_story_key)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class StorySpec(BaseModel):
    """A user story. Without `story_key` it is `<sd_key>:US-<n>`, numbered in file order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    story_key: StoryKey | None = None
    title: Text
    acceptance_criteria: list[JsonValue] = Field(default_factory=list)
    status: StoryStatus = "draft"
    e2e_test_path: str | None = None


class PrdSpec(BaseModel):
    """The SD's product requirements document. Its id defaults to `PRD-<sd_key>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    title: Text
    status: PrdStatus = "draft"
    executive_summary: str = ""
    functional_requirements: list[JsonValue] = Field(default_factory=list)
    test_scenarios: list[JsonValue] = Field(default_factory=list)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class SdSpec(StorableModel):
    """A new strategic directive with its PRD and stories, as written in a JSON or YAML file.

    Unknown fields are refused, so a misspelt field is an error rather than silently dropped.
    A new SD always starts as draft / LEAD_APPROVAL; handoffs move it on. A NUL anywhere is
    refused naming the field: PostgreSQL cannot store it (`sd create` and `sd update` alike).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sd_key: SdId
    id: SdId | None = None
    title: Text
    description: str = ""
    scope: str = ""
    rationale: str = ""
    category: str | None = None
    sd_type: SdType = "feature"
    priority: Priority = "medium"
    intensity_level: IntensityLevel | None = None
    target_application: str | None = None
    success_criteria: list[JsonValue] = Field(default_factory=list)
    success_metrics: list[JsonValue] = Field(default_factory=list)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    prd: PrdSpec | None = None
    stories: list[StorySpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _story_keys_are_derivable_and_unique(self) -> SdSpec:
        if any(s.story_key is None for s in self.stories) and not re.match(
            STORY_KEY_PREFIX_PATTERN, self.sd_key
        ):
            raise ValueError(
                f"stories need an explicit story_key (like KEY:US-001): one cannot be derived "
                f"from sd_key {self.sd_key!r}, which has characters other than A-Z, 0-9 and '-'"
            )
        keys = self.story_keys
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"stories repeat story_key {', '.join(duplicates)}")
        return self

    @property
    def prd_id(self) -> str | None:
        if self.prd is None:
            return None
        return self.prd.id or f"PRD-{self.sd_key}"

    @property
    def story_keys(self) -> list[str]:
        return [
            s.story_key or f"{self.sd_key}:US-{n:03d}" for n, s in enumerate(self.stories, start=1)
        ]
