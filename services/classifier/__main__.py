import sys

from services.classifier.app import main

sys.exit(main())
