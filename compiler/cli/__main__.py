"""``python -m compiler.cli``: the same entry point as the ``nexort`` console script."""

import sys

from compiler.cli.app import main

sys.exit(main())
