"""Copy the CRDs we use from ../shared/k8s/crds into k8s/crds, recording where each came from.

    python k8s/vendor_crds.py [--check]

Only the kinds listed in USED are vendored (the objects the app and platform-crs stacks and
istio/ create). `--check` fails when the vendored files differ from what the sources give,
so a CRD upgrade in shared/ cannot silently leave stale schemas here.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cdktf"))

from weather_deploy.k8s_schemas import shared_k8s_dir  # noqa: E402

# source file in ../shared/k8s/crds -> kinds we create
USED: dict[str, tuple[str, ...]] = {
    "istio-1.30.3.yaml": (
        "AuthorizationPolicy",
        "DestinationRule",
        "Gateway",
        "PeerAuthentication",
        "RequestAuthentication",
        "Sidecar",
        "Telemetry",
        "VirtualService",
    ),
    "keda-2.20.2.yaml": ("ScaledObject",),
    "cloudnative-pg-1.30.0.yaml": ("Cluster", "ScheduledBackup"),
}


def vendored(source: Path, kinds: tuple[str, ...]) -> str:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    documents = [d for d in yaml.load_all(source.read_text(encoding="utf-8"), Loader=loader) if d]
    picked = [d for d in documents if d.get("spec", {}).get("names", {}).get("kind") in kinds]
    missing = set(kinds) - {d["spec"]["names"]["kind"] for d in picked}
    if missing:
        raise SystemExit(f"{source.name} has no CRD for {sorted(missing)}")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    header = (
        f"# Vendored from ../shared/k8s/crds/{source.name} (sha256 {digest}) by "
        f"k8s/vendor_crds.py: the CRDs of {', '.join(kinds)}. Do not edit by hand.\n"
    )
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    body = yaml.dump_all(picked, Dumper=dumper, sort_keys=True, width=1000)
    return header + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if k8s/crds is stale")
    args = parser.parse_args()
    stale = []
    for name, kinds in USED.items():
        target = HERE / "crds" / name
        text = vendored(shared_k8s_dir() / "crds" / name, kinds)
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            target.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale vendored CRDs: {stale}; run python k8s/vendor_crds.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
