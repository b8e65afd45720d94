"""Supervision tree: supervisors, connection actors (one folder per kind), persistence."""
