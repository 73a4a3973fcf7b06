"""``python -m exit_heartbeat`` runs the ``exit-heartbeat`` command line."""

from __future__ import annotations

from exit_heartbeat.cli import main

raise SystemExit(main())
