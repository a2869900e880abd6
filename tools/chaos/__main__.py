"""`python -m tools.chaos`: see `tools.chaos.run`."""

import sys

from tools.chaos.run import main

sys.exit(main())
