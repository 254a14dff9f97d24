"""``python -m ingest.config --readme-table``: print the README's settings table."""

from __future__ import annotations

from ingest.config.docs import main

raise SystemExit(main())
