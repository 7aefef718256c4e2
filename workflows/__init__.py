"""The handoff workflows (one module per handoff type, on one shared pipeline) and SD-LIFECYCLE.

This package's `__init__` imports nothing: the workflow sandbox re-runs it for each workflow
instance it creates. The registry of workflows lives in `workflows.registry`.
"""
