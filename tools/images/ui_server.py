"""The UI image's entrypoint: devmesh's static file server on all interfaces.

The image serves `ui/dist` with the very handler `make up` uses (devmesh.static), so the
security headers (CSP without 'unsafe-inline', nosniff, frame-ancestors 'none'), the cache
rules and the refusal of directory listings are defined once. It needs only the standard
library, so it runs on the same Python runtime base as the services (distroless
python3-debian12 in a registry) instead of a separate web-server image. It writes nothing
(read-only root filesystem) and leaves on SIGTERM, which PID 1 would otherwise ignore.

Environment: `UI_PORT` (default 8080, the `ui` Service's port), `UI_HOST` (default all
interfaces), `UI_ROOT` (default /srv/ui, where the Dockerfile copies ui/dist).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from devmesh.static import serve

CONTAINER_PORT = 8080
PORT_VARIABLE = "UI_PORT"
"""Where the server reads its port (the image sets it to CONTAINER_PORT)."""
# A container listens on its pod's address, not loopback.
ALL_INTERFACES = "0.0.0.0"  # nosec B104
DEFAULT_ROOT = Path("/srv/ui")


def main() -> int:
    port = int(os.environ.get(PORT_VARIABLE, CONTAINER_PORT))
    host = os.environ.get("UI_HOST", ALL_INTERFACES)
    root = Path(os.environ.get("UI_ROOT", str(DEFAULT_ROOT)))
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        serve(root, port, host)
    return 0


if __name__ == "__main__":
    sys.exit(main())
