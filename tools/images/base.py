"""The two local base images, bootstrapped from the Debian mirror (no registry needed).

mmdebstrap builds a bookworm root filesystem, `podman import` turns it into an image:

- builder (`BUILDER_IMAGE`): apt variant + Python 3.11, pip and venv; stands in for
  `python:3.11-slim-bookworm`, so it also drops Debian's EXTERNALLY-MANAGED marker and
  provides `python` (the registry image lets pip install, and names both).
- runtime (`RUNTIME_IMAGE`): only extracted packages (no maintainer scripts, no shell, no
  pip) — the way distroless `python3-debian12` is made: Debian's Python 3.11, libstdc++6
  and libgcc (TensorFlow's wheels need them) and the CA bundle.

An image is rebuilt only when its recipe changes: the sha256 of the recipe (suite, mirrors,
packages, hooks, import changes and the files copied in) is stored as a label and compared.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tools.images.names import BUILDER_IMAGE, RUNTIME_IMAGE, SERVICE_UID
from tools.images.podman import image_id, image_label, podman
from tools.images.timing import timed

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
SOURCES = (
    f"deb {MIRROR} {SUITE} main",
    f"deb {MIRROR} {SUITE}-updates main",
    f"deb {SECURITY_MIRROR} {SUITE}-security main",
)
RECIPE_LABEL = "io.weather-mesh.base-recipe"
HOST_EXTRA_CAS = Path("/usr/local/share/ca-certificates")
"""CAs this machine trusts beyond Debian's (its egress proxy): the builder's pip needs them."""

PATH_VALUE = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COMMON_CHANGES = (f"ENV PATH={PATH_VALUE}", "ENV LANG=C.UTF-8")


@dataclass(frozen=True)
class BaseImage:
    """One mmdebstrap recipe and the image it is imported as."""

    image_ref: str
    variant: str
    packages: tuple[str, ...]
    hooks: tuple[str, ...] = ()
    """Shell commands run on the host with the root fs as "$1", once the packages are in:
    mmdebstrap's extract hooks for the extract variant (it runs no customize hooks)."""
    changes: tuple[str, ...] = ()
    """Dockerfile instructions `podman import --change` applies (ENV, ENTRYPOINT, ...)."""
    copied_in: tuple[Path, ...] = field(default=())
    """Host files the hooks copy into the root fs: part of the recipe's identity."""

    def recipe_digest(self) -> str:
        """sha256 of everything that shapes the image: the mmdebstrap command line (suite,
        mirrors, variant, packages, hooks), the import changes and the files copied in."""
        recipe = [*self.mmdebstrap_command(Path("-")), *self.changes]
        digest = hashlib.sha256(json.dumps(recipe).encode())
        for path in self.copied_in:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def is_current(self) -> bool:
        return image_label(self.image_ref, RECIPE_LABEL) == self.recipe_digest()

    def mmdebstrap_command(self, target: Path) -> list[str]:
        command = [
            "mmdebstrap",
            "--quiet",
            f"--variant={self.variant}",
            f"--include={','.join(self.packages)}",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
        ]
        phase = "extract" if self.variant == "extract" else "customize"
        command += [f"--{phase}-hook={hook}" for hook in self.hooks]
        return [*command, SUITE, str(target), *SOURCES]

    def import_command(self, tarball: Path) -> list[str]:
        changes = [*COMMON_CHANGES, *self.changes, f"LABEL {RECIPE_LABEL}={self.recipe_digest()}"]
        arguments = ["import"]
        for change in changes:
            arguments += ["--change", change]
        return [*arguments, str(tarball), self.image_ref]


def _passwd_hook() -> str:
    """/etc/passwd and /etc/group with root, nobody and the services' user (no shell)."""
    users = (
        "root:x:0:0:root:/root:/usr/sbin/nologin\\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\\n"
        f"weather-mesh:x:{SERVICE_UID}:{SERVICE_UID}:weather-mesh:/nonexistent:/usr/sbin/nologin\\n"
    )
    groups = f"root:x:0:\\nnogroup:x:65534:\\nweather-mesh:x:{SERVICE_UID}:\\n"
    return f"printf '{users}' > \"$1/etc/passwd\" && printf '{groups}' > \"$1/etc/group\""


def runtime_image() -> BaseImage:
    return BaseImage(
        image_ref=RUNTIME_IMAGE,
        variant="extract",
        packages=(
            "base-files",
            "netbase",
            "tzdata",
            "python3.11-minimal",
            "libpython3.11-stdlib",
            "libstdc++6",
            "libgcc-s1",
            "ca-certificates",
        ),
        hooks=(
            'ln -sf python3.11 "$1/usr/bin/python3"',
            # No maintainer scripts run in an extract: build the CA bundle they would have.
            'mkdir -p "$1/etc/ssl/certs" && cat "$1"/usr/share/ca-certificates/mozilla/*.crt'
            ' > "$1/etc/ssl/certs/ca-certificates.crt"',
            'mkdir -p -m 1777 "$1/tmp"',
            _passwd_hook(),
        ),
        changes=(
            "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            'ENTRYPOINT ["/usr/bin/python3"]',
        ),
    )


def builder_image() -> BaseImage:
    extra_cas = tuple(sorted(HOST_EXTRA_CAS.glob("*.crt")))
    hooks = []
    if extra_cas:
        host_paths = " ".join(str(path) for path in extra_cas)
        hooks += [
            f"copy-in {host_paths} /usr/local/share/ca-certificates/",
            'chroot "$1" update-ca-certificates --fresh > /dev/null 2>&1',
        ]
    hooks.append('rm -f "$1"/usr/lib/python3.*/EXTERNALLY-MANAGED')
    return BaseImage(
        image_ref=BUILDER_IMAGE,
        variant="apt",
        packages=(
            "ca-certificates",
            "python3",
            "python3-pip",
            "python3-venv",
            "python-is-python3",
        ),
        hooks=tuple(hooks),
        changes=('CMD ["python3"]',),
        copied_in=extra_cas,
    )


def base_images() -> tuple[BaseImage, ...]:
    return (builder_image(), runtime_image())


def ensure_base_image(image: BaseImage, *, rebuild: bool = False) -> bool:
    """Build and import `image` unless an image of the same recipe exists; True if built."""
    if not rebuild and image.is_current():
        print(f"images: {image.image_ref}: up to date (recipe {image.recipe_digest()[:12]})")
        return False
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap is not installed: run `make images-deps` (as root)")
    with tempfile.TemporaryDirectory(prefix="weather-mesh-rootfs-") as workdir:
        tarball = Path(workdir) / "rootfs.tar"
        with timed(f"mmdebstrap {image.image_ref}"):
            subprocess.run(image.mmdebstrap_command(tarball), check=True)
        replaced_id = image_id(image.image_ref)
        with timed(f"podman import {image.image_ref}"):
            podman(image.import_command(tarball), capture=True)
    if replaced_id is not None:
        # The previous import is now untagged; drop it unless something still uses it.
        podman(["rmi", replaced_id], capture=True, check=False)
    return True
