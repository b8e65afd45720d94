"""The mqtt connection actor, its config schema and helpers."""
