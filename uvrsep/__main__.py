"""``python -m uvrsep`` = the ``uvrsep`` command."""

from .cli import main

raise SystemExit(main())
