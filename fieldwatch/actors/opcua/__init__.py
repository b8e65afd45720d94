"""The opcua connection actor, its config schema and helpers."""
