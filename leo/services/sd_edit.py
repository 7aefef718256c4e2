"""Fixing an SD without SQL: `leo sd update` and `LeoClient.update_sd`.

The SD as it stands is turned into the document `leo sd create` reads (stories with explicit
keys), the file's fields or the `--set` expressions are applied to it, and the result passes
the same validation as `sd create` (`SdSpec`). What differs from the SD as stored goes to
`fn_update_sd` in one call, which writes it and records who changed what, or refuses and
writes nothing.

`--set` syntax (PATH OP VALUE):
  title=Harden the handoffs        text
  success_criteria:=["a", "b"]     a JSON value (lists, objects, numbers, true/false, null)
  success_criteria+=Another one    append text to a list ('+:=' appends a JSON value)
  metadata.owner=alice             a nested field ('.' separates the levels)
  prd.title=The PRD                the PRD (created if the SD has none)
  stories[SD-X:US-002].title=...   a story by its key (a new key adds a story)
"""

from __future__ import annotations

import copy
import getpass
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from db.sd_updates import TRANSITION_OWNED_FIELD, SdUpdateResult, call_update_sd
from db.sds import SdDetails, get_sd_details
from leo.domain.refusals import RefusalCode
from leo.domain.sd_spec import SdSpec

if TYPE_CHECKING:
    import asyncpg

# Columns only transitions (and session claims) write. Named in the refusal, never written.
TRANSITION_OWNED = (
    "current_phase",
    "status",
    "transition_version",
    "progress_percentage",
    "is_working_on",
    "active_session_id",
    "claiming_session_id",
    "completion_date",
)
SD_FIELDS = (
    "title",
    "description",
    "scope",
    "rationale",
    "category",
    "sd_type",
    "priority",
    "intensity_level",
    "target_application",
    "success_criteria",
    "success_metrics",
    "metadata",
)
PRD_FIELDS = (
    "title",
    "status",
    "executive_summary",
    "functional_requirements",
    "test_scenarios",
    "metadata",
)
STORY_FIELDS = ("title", "acceptance_criteria", "status", "e2e_test_path")
SET_EXPRESSION = re.compile(
    r"^(?P<path>(?:[^=\[\]+:]|\[[^\]]*\])+?)(?P<op>\+:=|:=|\+=|=)(?P<value>.*)$", re.S
)
STORY_SEGMENT = re.compile(r"^stories\[(?P<key>[^\]]+)\]$")


class SdEditError(ValueError):
    """The edit cannot apply; nothing was written. `code` is a stable refusal code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def default_actor() -> str:
    """The OS user, as `--actor` defaults to."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return os.environ.get("USER") or "unknown"


def current_document(details: SdDetails) -> dict[str, Any]:
    """The SD as the document `leo sd create` reads, stories with their keys."""
    sd = details.sd
    doc: dict[str, Any] = {"sd_key": sd.sd_key, "id": sd.id}
    doc.update({name: copy.deepcopy(getattr(sd, name)) for name in SD_FIELDS})
    if details.prd is not None:
        doc["prd"] = {"id": details.prd.id} | {
            name: copy.deepcopy(getattr(details.prd, name)) for name in PRD_FIELDS
        }
    doc["stories"] = [
        {"story_key": s.story_key}
        | {name: copy.deepcopy(getattr(s, name)) for name in STORY_FIELDS}
        for s in details.stories
    ]
    return doc


def _refuse_owned(paths: Iterable[str]) -> None:
    owned = [p for p in paths if p.split(".", 1)[0] in TRANSITION_OWNED]
    if owned:
        raise SdEditError(
            TRANSITION_OWNED_FIELD,
            f"{', '.join(owned)} changes only through transitions (handoffs); nothing was changed",
        )


def merge_file(doc: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The document with a file's fields applied. Fields the file leaves out keep their values;
    `prd` merges field by field; `stories` entries update the story with their key, and entries
    without a key are added after the existing ones."""
    _refuse_owned(data)
    merged = copy.deepcopy(doc)
    for name, value in data.items():
        if name == "prd" and isinstance(value, Mapping) and isinstance(merged.get("prd"), dict):
            merged["prd"].update(copy.deepcopy(dict(value)))
        elif name == "stories" and isinstance(value, list):
            for entry in value:
                _merge_story(merged, entry)
        else:
            merged[name] = copy.deepcopy(value)
    return merged


def _merge_story(doc: dict[str, Any], entry: Any) -> None:
    stories: list[Any] = doc["stories"]
    if isinstance(entry, Mapping) and entry.get("story_key") is not None:
        for story in stories:
            if story.get("story_key") == entry["story_key"]:
                story.update(copy.deepcopy(dict(entry)))
                return
    if isinstance(entry, Mapping) and entry.get("story_key") is None:
        entry = {**entry, "story_key": _next_story_key(doc)}
    stories.append(copy.deepcopy(entry))


def _next_story_key(doc: dict[str, Any]) -> str | None:
    numbers = [
        int(match.group(1))
        for s in doc["stories"]
        if isinstance(s, Mapping)
        and (match := re.search(r":US-(\d+)$", str(s.get("story_key") or "")))
    ]
    if not re.match(r"^[A-Z0-9-]+$", doc["sd_key"]):
        return None  # SdSpec then says that stories of this SD need an explicit key
    return f"{doc['sd_key']}:US-{max(numbers, default=0) + 1:03d}"


def apply_set(doc: dict[str, Any], expression: str) -> dict[str, Any]:
    """The document with one `--set PATH=VALUE` expression applied (syntax: module docstring)."""
    match = SET_EXPRESSION.match(expression)
    if match is None or not match.group("path").strip():
        raise SdEditError(
            RefusalCode.INVALID_INPUT,
            f"--set {expression!r}: write FIELD=TEXT, FIELD:=JSON, FIELD+=TEXT or FIELD+:=JSON",
        )
    path, op, raw = match.group("path").strip(), match.group("op"), match.group("value")
    _refuse_owned([path])
    value: Any = raw
    if op in (":=", "+:="):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SdEditError(
                RefusalCode.INVALID_INPUT, f"--set {path}{op}: the value is not JSON ({exc.msg})"
            ) from exc
    merged = copy.deepcopy(doc)
    *parents, last = _segments(path)
    target = merged
    for segment in parents:
        target = _child(merged, target, segment, path)
    if op.startswith("+"):
        items = target.get(last)
        if items is None:
            items = target[last] = []
        if not isinstance(items, list):
            raise SdEditError(RefusalCode.INVALID_INPUT, f"--set {path}{op}: {path} is not a list")
        items.append(value)
    else:
        target[last] = value
    return merged


def _segments(path: str) -> list[str]:
    parts: list[str] = []
    for piece in re.findall(r"stories\[[^\]]+\]|[^.]+", path):
        parts.append(piece)
    return parts


def _child(doc: dict[str, Any], target: dict[str, Any], segment: str, path: str) -> dict[str, Any]:
    story = STORY_SEGMENT.match(segment)
    if story is not None:
        key = story.group("key")
        for entry in doc["stories"]:
            if entry.get("story_key") == key:
                return entry  # type: ignore[no-any-return]
        entry = {"story_key": key}
        doc["stories"].append(entry)
        return entry
    child = target.get(segment)
    if child is None:
        child = target[segment] = {}
    if not isinstance(child, dict):
        raise SdEditError(RefusalCode.INVALID_INPUT, f"--set {path}: {segment} is not an object")
    return child


def validate(doc: dict[str, Any], current: SdDetails) -> SdSpec:
    """The same validation as `sd create`; keys never change. Raises pydantic's
    ValidationError (field by field) or `SdEditError`."""
    for name in ("sd_key", "id"):
        if doc.get(name) != getattr(current.sd, name):
            raise SdEditError(
                RefusalCode.INVALID_INPUT,
                f"{name} identifies the SD and never changes (it is {getattr(current.sd, name)})",
            )
    return SdSpec.model_validate(doc)


def changes_between(current: SdDetails, spec: SdSpec) -> dict[str, Any]:
    """`p_changes` for fn_update_sd: only the values that differ from the stored ones."""
    stored = current_document(current)
    wanted = spec.model_dump(mode="json")
    changes: dict[str, Any] = {}
    sd = {name: wanted[name] for name in SD_FIELDS if wanted[name] != stored[name]}
    if sd:
        changes["sd"] = sd
    if spec.prd is not None:
        new_prd = wanted["prd"] | {"id": spec.prd_id}
        old_prd = stored.get("prd")
        prd = (
            {name: new_prd[name] for name in ("id", *PRD_FIELDS)}
            if old_prd is None
            else {n: new_prd[n] for n in PRD_FIELDS if new_prd[n] != old_prd[n]}
        )
        if prd:
            changes["prd"] = prd
    old_stories = {s["story_key"]: s for s in stored["stories"]}
    stories = []
    for key, story in zip(spec.story_keys, wanted["stories"], strict=True):
        old = old_stories.get(key)
        diff = {n: story[n] for n in STORY_FIELDS if old is None or story[n] != old[n]}
        if diff:
            stories.append({"story_key": key, **diff})
    if stories:
        changes["stories"] = stories
    return changes


async def update_sd(
    conn: asyncpg.Connection | asyncpg.Pool,
    ref: str,
    *,
    data: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
    actor: str | None = None,
    expected_version: int | None = None,
    request_id: str | None = None,
) -> SdUpdateResult:
    """Apply a file's fields (`data`) and `--set` expressions to the SD named `ref`.

    Raises `SdEditError` (a refusal, with its code) or pydantic's ValidationError; in both
    cases nothing is written. An edit that changes nothing records nothing.
    """
    current = await get_sd_details(conn, ref)
    if current is None:
        raise SdEditError(RefusalCode.SD_NOT_FOUND, f"SD not found: {ref}")
    doc = current_document(current)
    if data is not None:
        doc = merge_file(doc, data)
    for expression in sets:
        doc = apply_set(doc, expression)
    spec = validate(doc, current)
    result = await call_update_sd(
        conn,
        current.sd.id,
        changes_between(current, spec),
        actor=actor or default_actor(),
        expected_version=expected_version or current.sd.transition_version,
        request_id=request_id,
    )
    if not result.success:
        raise SdEditError(result.code, result.error or result.code)
    return result
