import sys

from services.reporting.server import main

sys.exit(main())
