"""`python -m bridgezoo.cli`: the `bridgezoo` command."""

import sys

from . import main

sys.exit(main())
