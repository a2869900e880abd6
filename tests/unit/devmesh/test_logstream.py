from __future__ import annotations

from devmesh.logstream import prefix_line, prefix_width


def test_names_are_padded_to_the_longest_so_columns_line_up() -> None:
    width = prefix_width(["nats", "postgres", "dispatcher"])
    assert prefix_line("nats", width, b"ready\n") == "nats       | ready\n"
    assert prefix_line("dispatcher", width, b"ready\r\n") == "dispatcher | ready\n"


def test_undecodable_bytes_are_replaced_not_fatal() -> None:
    assert prefix_line("envoy", 5, b"\xff\xfeok\n") == "envoy | \ufffd\ufffdok\n"
