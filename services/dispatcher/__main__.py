import sys

from services.dispatcher.app import main

sys.exit(main())
