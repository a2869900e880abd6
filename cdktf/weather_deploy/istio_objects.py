"""The Istio policy of `istio/` as the app stack applies it.

`istio/*.yaml` is readable YAML a reviewer audits without Python; the app stack applies every
document in it (the flow table and the istiod chart values excepted: they are not objects).
What differs per environment is set here, on copies:
- the classifier canary's share: a VirtualService `classifier` whose route has the subsets
  `stable` and `canary` gets weights 100-w / w from the environment's `canary_weight`;
- the public host: the host an edge `Gateway` serves in the files is a placeholder for the
  environment's domain, replaced in Gateway and VirtualService hosts and in exact CORS origins;
- the trace sampling percentage of every `Telemetry` tracing entry.

The edge's token rule (issuer, audience, JWKS URI of the RequestAuthentication) is read from
here for the services too (`edge_token_rule`): they verify tokens exactly as the edge does.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from weather_deploy.contract import APP_NAMESPACE, CANARY, STABLE

Manifest = dict[str, Any]
ISTIO_DIR = Path(__file__).resolve().parents[2] / "istio"
FLOW_TABLE = "flows.yaml"
# Values of the istiod chart that the policies rely on: the platform stack merges them into
# the istiod release (see charts.istiod_values); not a Kubernetes object.
ISTIOD_VALUES = "istiod-values.yaml"
NOT_OBJECTS = {FLOW_TABLE, ISTIOD_VALUES}
CANARY_ROUTE = "classifier"


def load_istio_objects(folder: Path) -> list[Manifest]:
    """Every YAML document of every `*.yaml` in `folder` but the flow table and the istiod
    values, in file order."""
    objects: list[Manifest] = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name in NOT_OBJECTS:
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is None:
                continue
            if not isinstance(document, dict) or "kind" not in document:
                raise ValueError(f"{path}: a document that is not a Kubernetes object")
            objects.append(document)
    return objects


def edge_token_rule(objects: Iterable[Manifest]) -> Manifest:
    """The one jwtRule of the one RequestAuthentication (the edge's): refused otherwise, since
    the services can only verify tokens one way."""
    found = [obj for obj in objects if obj.get("kind") == "RequestAuthentication"]
    if len(found) != 1 or len(found[0]["spec"].get("jwtRules", [])) != 1:
        raise ValueError("istio/ must hold one RequestAuthentication with one jwtRule")
    rule: Manifest = found[0]["spec"]["jwtRules"][0]
    return rule


def load_istiod_values(folder: Path) -> Manifest:
    """The istiod chart values `folder` asks for ({} when it has none)."""
    path = folder / ISTIOD_VALUES
    if not path.is_file():
        return {}
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: chart values must be a mapping")
    return values


def merged(base: Manifest, overlay: Manifest) -> Manifest:
    """`overlay` merged into `base`: mappings merge key by key, anything else is replaced."""
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _canary_destinations(virtual_service: Manifest) -> Iterable[list[Manifest]]:
    for route in virtual_service.get("spec", {}).get("http", []):
        destinations: list[Manifest] = route.get("route", [])
        subsets = {d.get("destination", {}).get("subset") for d in destinations}
        if {STABLE, CANARY} <= subsets:
            yield destinations


def with_canary_weight(objects: Iterable[Manifest], canary_weight: int) -> list[Manifest]:
    """The objects with the classifier route split stable 100-w / canary w.

    Fails when no VirtualService `classifier` (namespace weather) routes to both subsets: the
    environment's canary setting would otherwise move nothing, silently.
    """
    if not 0 <= canary_weight <= 100:
        raise ValueError(f"canary weight {canary_weight} is not a percentage")
    result = [copy.deepcopy(obj) for obj in objects]
    split_routes = 0
    for obj in result:
        meta = obj.get("metadata", {})
        if obj.get("kind") != "VirtualService" or meta.get("name") != CANARY_ROUTE:
            continue
        if meta.get("namespace", APP_NAMESPACE) != APP_NAMESPACE:
            continue
        for destinations in _canary_destinations(obj):
            split_routes += 1
            for destination in destinations:
                subset = destination.get("destination", {}).get("subset")
                if subset == STABLE:
                    destination["weight"] = 100 - canary_weight
                elif subset == CANARY:
                    destination["weight"] = canary_weight
    if not split_routes:
        raise ValueError(
            f"no VirtualService {CANARY_ROUTE!r} in namespace {APP_NAMESPACE!r} routes to "
            f"subsets {STABLE!r} and {CANARY!r}: the canary weight has nothing to set"
        )
    return result


def _public_hosts(objects: Iterable[Manifest]) -> set[str]:
    """The host names the Gateways serve (`namespace/host` or `host`), wildcards aside."""
    hosts = set()
    for obj in objects:
        if obj.get("kind") == "Gateway":
            for server in obj.get("spec", {}).get("servers", []):
                hosts |= {h.rpartition("/")[2] for h in server.get("hosts", [])}
    return {host for host in hosts if "*" not in host}


def with_domain(objects: Iterable[Manifest], domain: str) -> list[Manifest]:
    """The objects serving `domain` where the files serve their placeholder host."""
    result = [copy.deepcopy(obj) for obj in objects]
    placeholders = _public_hosts(result)
    origins = {f"https://{host}" for host in placeholders}

    def host(value: str) -> str:
        namespace, slash, name = value.rpartition("/")
        return f"{namespace}{slash}{domain}" if name in placeholders else value

    for obj in result:
        spec = obj.get("spec", {})
        if obj.get("kind") == "Gateway":
            for server in spec.get("servers", []):
                server["hosts"] = [host(h) for h in server.get("hosts", [])]
        if obj.get("kind") == "VirtualService":
            spec["hosts"] = [host(h) for h in spec.get("hosts", [])]
            for route in spec.get("http", []):
                for origin in route.get("corsPolicy", {}).get("allowOrigins", []):
                    if origin.get("exact") in origins:
                        origin["exact"] = f"https://{domain}"
    return result


def with_trace_sampling(objects: Iterable[Manifest], percentage: float) -> list[Manifest]:
    """Every Telemetry tracing entry sampling `percentage` percent of the traces it starts."""
    result = [copy.deepcopy(obj) for obj in objects]
    for obj in result:
        if obj.get("kind") == "Telemetry":
            for tracing in obj.get("spec", {}).get("tracing", []):
                tracing["randomSamplingPercentage"] = percentage
    return result


def tls_credentials(objects: Iterable[Manifest]) -> set[str]:
    """Names of the TLS Secrets the Gateways expect (`credentialName`)."""
    return {
        server["tls"]["credentialName"]
        for obj in objects
        if obj.get("kind") == "Gateway"
        for server in obj.get("spec", {}).get("servers", [])
        if server.get("tls", {}).get("credentialName")
    }
