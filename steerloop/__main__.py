"""``python -m steerloop``: the same as the ``steerloop`` command."""

from steerloop.cli.app import main

raise SystemExit(main())
