"""`python -m tools.dast`: see `tools.dast.run`."""

import sys

from tools.dast.run import main

sys.exit(main())
