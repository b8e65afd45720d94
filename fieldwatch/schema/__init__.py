"""YAML nodes with line numbers and the validation DSL over them, shared by config and protocol folders.

It imports nothing of `fieldwatch.config` or `fieldwatch.actors`, so a protocol folder's
option schema can use it without an import cycle.
"""
