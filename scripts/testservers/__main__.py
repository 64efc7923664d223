"""``python -m scripts.testservers run|start|stop ...``: see the package's docstring."""

import sys

from .cli import main

sys.exit(main())
