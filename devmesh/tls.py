"""The gateway's development certificate: self-signed, for localhost and 127.0.0.1,
generated under the data directory on first use and never committed.

A browser warns about it once (it is signed by nobody it trusts); `curl --cacert
.data/tls/cert.pem https://127.0.0.1:8080/` trusts it explicitly. A cluster's edge uses
its own certificate (cdktf: the `tls` Terraform variables).
"""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404 - openssl with fixed arguments
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 30
RENEW_WITHIN_SECONDS = 24 * 3600
SUBJECT_ALT_NAMES = "DNS:localhost,IP:127.0.0.1,IP:::1"


class CertificateError(RuntimeError):
    """openssl is missing or failed."""


@dataclass(frozen=True)
class TlsFiles:
    certificate: Path
    private_key: Path


def tls_files(directory: Path) -> TlsFiles:
    return TlsFiles(directory / "cert.pem", directory / "key.pem")


def _expires_soon(certificate: Path, openssl: str) -> bool:
    result = subprocess.run(  # nosec B603 - fixed argv
        [
            openssl,
            "x509",
            "-checkend",
            str(RENEW_WITHIN_SECONDS),
            "-noout",
            "-in",
            str(certificate),
        ],
        capture_output=True,
        check=False,
    )
    return result.returncode != 0


def ensure_dev_certificate(directory: Path) -> TlsFiles:
    """The certificate and key in `directory`, (re)generated when missing or about to
    expire: ECDSA P-256, key mode 0600."""
    files = tls_files(directory)
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertificateError("openssl is needed to make the gateway's development certificate")
    present = files.certificate.is_file() and files.private_key.is_file()
    if present and not _expires_soon(files.certificate, openssl):
        return files
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files.private_key.unlink(missing_ok=True)
    previous_umask = os.umask(0o077)
    try:
        result = subprocess.run(  # nosec B603 - fixed argv
            [
                openssl,
                *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
                *("-nodes", "-days", str(VALID_DAYS), "-subj", "/CN=weather-mesh development"),
                *("-addext", f"subjectAltName={SUBJECT_ALT_NAMES}"),
                *("-keyout", str(files.private_key), "-out", str(files.certificate)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.umask(previous_umask)
    if result.returncode != 0:
        raise CertificateError(f"openssl could not make a certificate:\n{result.stderr}")
    files.certificate.chmod(0o644)
    return files
