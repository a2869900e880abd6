"""`python -m services`: run the service named by `WEATHER_MESH_SERVICE`.

Why: the one image recipe (images/service.Dockerfile) cannot spell `services.<name>` in an
exec-form ENTRYPOINT, and its runtime has no shell to expand it; the image sets the variable
from its SERVICE build argument instead. Outside an image, run `python -m services.<name>`.
"""

from __future__ import annotations

import os
import runpy
import sys

SERVICES = ("dispatcher", "classifier", "reporting")

name = os.environ.get("WEATHER_MESH_SERVICE", "")
if name not in SERVICES:
    sys.exit(f"WEATHER_MESH_SERVICE must be one of {', '.join(SERVICES)}; it is {name!r}")
runpy.run_module(f"services.{name}", run_name="__main__", alter_sys=True)
