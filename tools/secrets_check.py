"""`make secrets-scan`: detect-secrets over every tracked file, against the committed
baseline (`.secrets.baseline`).

A finding fails the check unless the baseline holds the same secret (file, type and
hash) marked `"is_secret": false` — a reviewed false positive. Line numbers are not
compared, so editing around a known false positive does not fail the build; a real secret
is removed from the repository (and rotated), never added to the baseline.

`--update` rewrites the baseline from a fresh scan, keeping earlier verdicts; review every
new entry and set `is_secret` before committing it.
"""

from __future__ import annotations

import argparse
import json
import subprocess  # nosec B404 - runs the pinned detect-secrets CLI with fixed arguments
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE = REPO_ROOT / ".secrets.baseline"
# Generated code and lock files are full of high-entropy hashes that are not secrets.
EXCLUDE_FILES = r"(^|/)(ui/src/gen|gen)/|package-lock\.json$|\.secrets\.baseline$"

Finding = tuple[str, str, str]


def scan() -> dict[str, Any]:
    """A fresh baseline of every file git tracks (detect-secrets' default)."""
    result = subprocess.run(  # nosec B603 - fixed argv: our own pinned tool
        [
            str(Path(sys.executable).with_name("detect-secrets")),
            "scan",
            "--exclude-files",
            EXCLUDE_FILES,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    scanned: dict[str, Any] = json.loads(result.stdout)
    return scanned


def findings(baseline: dict[str, Any]) -> dict[Finding, dict[str, Any]]:
    return {
        (filename, entry["type"], entry["hashed_secret"]): entry
        for filename, entries in baseline["results"].items()
        for entry in entries
    }


def unreviewed(fresh: dict[str, Any], committed: dict[str, Any]) -> list[str]:
    """Findings of `fresh` that `committed` does not mark as a false positive."""
    known = findings(committed)
    return [
        f"{filename}:{entry['line_number']}: {kind}"
        for (filename, kind, hashed), entry in sorted(findings(fresh).items())
        if known.get((filename, kind, hashed), {}).get("is_secret") is not False
    ]


def update(fresh: dict[str, Any], committed: dict[str, Any]) -> dict[str, Any]:
    """`fresh`, with the verdicts of `committed` carried over."""
    known = findings(committed)
    for key, entry in findings(fresh).items():
        if "is_secret" in known.get(key, {}):
            entry["is_secret"] = known[key]["is_secret"]
    fresh["generated_at"] = committed.get("generated_at", fresh.get("generated_at"))
    return fresh


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--update", action="store_true", help="rewrite the baseline")
    args = parser.parse_args()
    committed = json.loads(BASELINE.read_text()) if BASELINE.is_file() else {"results": {}}
    fresh = scan()
    if args.update:
        BASELINE.write_text(json.dumps(update(fresh, committed), indent=2) + "\n")
        print(f"{BASELINE.name}: rewritten; review new entries and set is_secret")
        return 0
    new = unreviewed(fresh, committed)
    for line in new:
        print(f"possible secret: {line}", file=sys.stderr)
    if new:
        print(
            f"secrets scan: {len(new)} finding(s) not in {BASELINE.name} as reviewed false "
            "positives: remove the secret, or (a false positive) `make secrets-baseline` "
            'and set "is_secret": false',
            file=sys.stderr,
        )
        return 1
    print(f"secrets scan: clean ({len(findings(fresh))} reviewed false positives)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
