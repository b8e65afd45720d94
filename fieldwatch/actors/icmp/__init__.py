"""The icmp connection actor, its config schema and helpers."""
