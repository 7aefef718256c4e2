"""The typed Python API, what Python users touch: `LeoClient` for handoffs, SD status and
audit; `LifecycleClient` for SD-LIFECYCLE. See `leo/api/client.py` for an example."""

from leo.api.client import ConnectionFailed, HandoffFailed, LeoClient, result_from_failure
from leo.api.lifecycle import LifecycleClient, LifecycleConflict

__all__ = [
    "ConnectionFailed",
    "HandoffFailed",
    "LeoClient",
    "LifecycleClient",
    "LifecycleConflict",
    "result_from_failure",
]
