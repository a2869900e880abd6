import sys

from services.classifier.server import main

sys.exit(main())
