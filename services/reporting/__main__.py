import sys

from services.reporting.app import main

sys.exit(main())
