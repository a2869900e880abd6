import sys

from services.dispatcher.server import main

sys.exit(main())
