"""NATS subject matching, for tests that judge subjects and permissions without a server.

One definition for every such test: the permission table, the rendered cluster config and
the event subjects are all judged by the same wildcard rules nats-server applies (the
integration tests check the same rights against a real server).
"""

from __future__ import annotations


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard semantics: `*` one token, `>` one or more trailing tokens."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or token not in ("*", tokens[index]):
            return False
    return len(tokens) == len(wanted)
