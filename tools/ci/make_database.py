"""Which make targets exist, read from make's own database, and which ones a shell line calls.

Asking make (`make -pq`) rather than grepping the mk files means targets defined through
variables, includes or pattern-free generated names count exactly as make sees them.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

# `name other-name: prerequisites` at the start of a line; `:=`/`::=` are assignments.
_RULE = re.compile(r"^(?P<targets>[^\s#:=%][^:=]*?)::?(?!=)")
_NOT_A_TARGET = "# Not a target:"
# make's options that take their value as the next word.
_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}
_OPTIONS_WITH_VALUE = {"-C", "-f", "-I", "-j", "-l", "-o", "-W", "--file", "--directory"}


def make_targets(root: Path) -> set[str]:
    """Every target make knows in `root`'s Makefile, without running any recipe."""
    database = subprocess.run(
        ["make", "--print-data-base", "--question", "--no-builtin-rules", "-C", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if "# Make data base" not in database.stdout:
        raise RuntimeError(f"make printed no database in {root}: {database.stderr.strip()}")
    targets: set[str] = set()
    previous = ""
    for line in database.stdout.splitlines():
        match = _RULE.match(line)
        if match and previous != _NOT_A_TARGET:
            targets.update(match.group("targets").split())
        previous = line
    return targets


def called_targets(line: str) -> list[str]:
    """The targets a script line asks make for: `make lint`, `make synth ENV=dev` -> ["synth"].

    Variable assignments (`ENV=dev`) and options are not targets; a line that runs no make
    (or runs it after `&&`/`;`) yields the targets of each make it runs.
    """
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:
        return []
    targets: list[str] = []
    at_command = True  # the next word is a command (or a VAR=value before one)
    in_make = False
    takes_value = False
    for word in words:
        if word in _SEPARATORS:
            at_command, in_make, takes_value = True, False, False
        elif at_command and "=" in word and not word.startswith("-"):
            continue
        elif at_command:
            at_command = False
            in_make = word == "make" or word.endswith("/make")
        elif in_make and takes_value:
            takes_value = False
        elif in_make and word in _OPTIONS_WITH_VALUE:
            takes_value = True
        elif in_make and not word.startswith("-") and "=" not in word:
            targets.append(word)
    return targets
