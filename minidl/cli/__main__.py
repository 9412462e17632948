"""``python -m minidl.cli``: the ``minidl`` command."""

import sys

from . import main

sys.exit(main())
