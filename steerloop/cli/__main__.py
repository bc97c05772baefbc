"""``python -m steerloop.cli``: the same as the ``steerloop`` command."""

from steerloop.cli.app import main

raise SystemExit(main())
