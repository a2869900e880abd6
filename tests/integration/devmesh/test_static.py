"""devmesh's UI file server, the gateway's upstream for every path that is not the API."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh.ports import free_port
from devmesh.static import StaticSite


def _site(tmp_path: Path, root: Path) -> StaticSite:
    return StaticSite(port=free_port(), root=root, log_path=tmp_path / "ui.log")


@pytest.fixture
def built_site(tmp_path: Path) -> Iterator[StaticSite]:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>weather-mesh</title>")
    (root / "assets" / "index-abc123.css").write_text("body{}")
    (tmp_path / "secret.txt").write_text("outside the root")
    site = _site(tmp_path, root)
    site.start()
    yield site
    site.stop()


def _get(site: StaticSite, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=5)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


def test_index_is_revalidated_and_hashed_assets_are_cached_for_good(
    built_site: StaticSite,
) -> None:
    status, headers, body = _get(built_site, "/")
    asset_status, asset_headers, _ = _get(built_site, "/assets/index-abc123.css")

    assert status == 200
    assert b"weather-mesh" in body
    assert headers["cache-control"] == "no-cache"
    assert "connect-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert asset_status == 200
    assert asset_headers["content-type"] == "text/css"
    assert "immutable" in asset_headers["cache-control"]


def test_no_directory_listing_and_nothing_outside_the_root(built_site: StaticSite) -> None:
    assert _get(built_site, "/assets/")[0] == 404
    assert _get(built_site, "/../secret.txt")[0] == 404
    assert _get(built_site, "/%2e%2e/secret.txt")[0] == 404


def test_an_unbuilt_ui_says_how_to_build_it(tmp_path: Path) -> None:
    site = _site(tmp_path, tmp_path / "missing")
    site.start()
    try:
        status, _, body = _get(site, "/")
    finally:
        site.stop()
    assert status == 503
    assert b"make ui" in body
    assert not site.built


def test_sigterm_stops_the_server_cleanly(built_site: StaticSite) -> None:
    assert built_site.stop() == 0
