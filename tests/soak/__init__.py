"""The chaos soak: the daemon as a process under random, seeded faults (see test_soak.py)."""
