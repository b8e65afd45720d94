"""`python -m fieldwatch`: the command line."""

from __future__ import annotations

from fieldwatch.cli import main

raise SystemExit(main())
