"""`python -m tools.load`: see `tools.load.run`."""

import sys

from tools.load.run import main

sys.exit(main())
