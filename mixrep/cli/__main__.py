"""``python -m mixrep.cli``: the ``mixrep`` command without the installed script."""

import sys

from mixrep.cli import main

sys.exit(main())
