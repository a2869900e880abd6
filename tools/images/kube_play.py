"""The app stack's Deployments, adapted to `podman kube play --network host` on this machine.

`make test-images` runs the very objects cdktf synthesizes (the `manifest` of each
`kubernetes_manifest`), so a change in cdktf that breaks a container fails here. Only what
cannot hold on one machine without a cluster is changed, and `ADAPTED` lists every such
field (the tests assert nothing else differs):

- the image: `<registry>/weather-mesh/<name>:${var.image_tag}` -> the image built here;
- in-cluster addresses (NATS, OTLP) and the identity provider's JWKS URI -> local ones, in
  ConfigMaps and `env`; the Secrets' values (Terraform tokens: the database URLs, the
  page-token key, each service's NATS password) -> values given here;
- ports: every pod shares the host's network, so each container port moves to a free one,
  in its ConfigMap (or, for the UI, the image's port variable) and in its probes;
- names podman keeps machine-wide (pods, secrets, volumes) get a run suffix, in the
  references to them too (`envFrom`'s secretRef, a secret volume's secretName);
- what podman cannot honour is dropped (see `_pod_spec` and `_container`).

Everything else - command, env names, the ConfigMaps' keys, resources, both securityContexts,
the gRPC probes (on the moved port), the grace period, labels - is passed on as synthesized.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.images.names import UI_IMAGE_NAME
from tools.images.ui_server import PORT_VARIABLE as UI_PORT_VARIABLE

Manifest = dict[str, Any]

TERRAFORM_TOKEN = re.compile(r"\$\{[^}]*\}")
CLUSTER_DOMAIN = ".svc.cluster.local"
IMAGE_NAME = re.compile(r"/weather-mesh/(?P<name>[^/:]+):[^/]+$")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
# Images that read their listening port from a variable instead of a ConfigMap key.
IMAGE_PORT_VARIABLES = {UI_IMAGE_NAME: UI_PORT_VARIABLE}

ADAPTED = frozenset(
    {
        "metadata.name",
        "spec.template.metadata.annotations",
        "spec.template.spec.serviceAccountName",
        "spec.template.spec.topologySpreadConstraints",
        "spec.template.spec.volumes",
        "spec.template.spec.containers[].image",
        "spec.template.spec.containers[].ports",
        "spec.template.spec.containers[].env",
        "spec.template.spec.containers[].envFrom",
        "spec.template.spec.containers[].volumeMounts",
        "spec.template.spec.containers[].startupProbe",
        "spec.template.spec.containers[].readinessProbe",
        "spec.template.spec.containers[].livenessProbe",
    }
)
"""Every Deployment field the adaptation may change (`[]`: any item of a list)."""


class AdaptationError(ValueError):
    """A synthesized object cannot be run here as asked (a missing value or object)."""


@dataclass(frozen=True)
class LocalMachine:
    """What replaces the cluster on this machine."""

    image_refs: Mapping[str, str]
    """Image name (`dispatcher`, `ui`, ...) -> reference of the image built here."""
    addresses: Mapping[str, str]
    """In-cluster address -> local one (NATS, the OTLP receiver, the JWKS URI)."""
    secret_values: Mapping[str, str]
    """Value here of every Secret key whose synthesized value is a Terraform token, by
    `<Secret name>/<key>` or, when no Secret shares the key, by `<key>` alone."""
    suffix: str
    """Appended to every name podman keeps machine-wide, so runs never collide."""


@dataclass
class KubePlay:
    """The play file's documents, the podman secrets it needs, and what was adapted."""

    suffix: str
    documents: list[Manifest]
    secrets: dict[str, dict[str, str]]
    """podman secret name -> its keys and values (podman 4.3 cannot play a Secret: below)."""
    mounted_secrets: set[str] = field(default_factory=set)
    """The secrets a volume mounts: podman 4.3 reads those as a Secret object, not as the
    JSON of base64 values an `envFrom` needs (`podman_secret_payload`)."""
    ports: dict[str, dict[str, int]] = field(default_factory=dict)
    """Deployment (synthesized name) -> container port name -> the free port it uses here."""
    volumes: list[str] = field(default_factory=list)

    def deployments(self) -> list[Manifest]:
        return [document for document in self.documents if document["kind"] == "Deployment"]

    def deployment(self, name: str) -> Manifest:
        """The adapted Deployment of synthesized name `name`."""
        found = [d for d in self.deployments() if d["metadata"]["name"] == f"{name}-{self.suffix}"]
        if len(found) != 1:
            raise LookupError(f"Deployment {name}: {len(found)} in the play")
        return found[0]

    def pod_names(self) -> list[str]:
        """The pods podman 4.3 creates: `<deployment>-pod-0`."""
        return [f"{d['metadata']['name']}-pod-0" for d in self.deployments()]

    def container_name(self, deployment: str, container: str) -> str:
        return f"{self.deployment(deployment)['metadata']['name']}-pod-0-{container}"

    def yaml_documents(self) -> str:
        """The play file: JSON documents (valid YAML) separated by `---`."""
        return "\n---\n".join(json.dumps(document) for document in self.documents) + "\n"


def podman_secret_payload(values: Mapping[str, str]) -> str:
    """What `podman secret create` must hold for an `envFrom.secretRef` in podman 4.3: a JSON
    object of base64 values. (4.3 stores a played `kind: Secret` as YAML, then fails to read
    it back as JSON, so the Secret is created beside the play instead of inside it.)"""
    return json.dumps(
        {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    )


def podman_mounted_secret_payload(name: str, values: Mapping[str, str]) -> str:
    """What `podman secret create` must hold for a `secret` volume in podman 4.3: a Secret
    object whose `data` holds the values as they are (4.3 ignores `stringData` and writes
    each `data` value to its file without base64-decoding it)."""
    return json.dumps(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": values}
    )


def secret_payload(play: KubePlay, name: str) -> str:
    """The `podman secret create` payload of the play's secret `name`."""
    values = play.secrets[name]
    if name in play.mounted_secrets:
        return podman_mounted_secret_payload(name, values)
    return podman_secret_payload(values)


def adapt(
    objects: Iterable[Manifest],
    deployments: Iterable[str],
    machine: LocalMachine,
    free_port: Callable[[], int],
) -> KubePlay:
    """The named Deployments of `objects` (the app stack's manifests), with the ConfigMaps
    and Secrets they read, made runnable here."""
    by_kind_name = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
    play = KubePlay(suffix=machine.suffix, documents=[], secrets={})
    config_maps: list[Manifest] = []
    for name in deployments:
        synthesized = by_kind_name.get(("Deployment", name))
        if synthesized is None:
            raise AdaptationError(f"the app stack has no Deployment {name}")
        deployment = copy.deepcopy(synthesized)
        deployment["metadata"]["name"] = f"{name}-{machine.suffix}"
        pod = deployment["spec"]["template"]
        pod["metadata"]["annotations"] = _without_istio(pod["metadata"].get("annotations", {}))
        spec = pod["spec"]
        _pod_spec(spec)
        volume_names = {
            volume["name"]: f"{name}-{volume['name']}-{machine.suffix}"
            for volume in spec.get("volumes", [])
        }
        for volume in spec.get("volumes", []):
            volume["name"] = volume_names[volume["name"]]
            if "secret" in volume:
                local_name = _local_secret(
                    play, by_kind_name, volume["secret"]["secretName"], machine
                )
                volume["secret"]["secretName"] = local_name
                play.mounted_secrets.add(local_name)
                play.volumes.append(local_name)  # podman 4.3 fills a volume of that name
        play.volumes += volume_names.values()
        for container in spec["containers"]:
            image_name = _image_name(container["image"])
            ports = _container(container, machine, volume_names, free_port)
            play.ports.setdefault(name, {}).update(
                {port_name: local for port_name, (_, local) in ports.items()}
            )
            by_number = dict(ports.values())
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    config_map = copy.deepcopy(
                        _referenced(by_kind_name, "ConfigMap", source["configMapRef"]["name"])
                    )
                    _localise_config(config_map["data"], machine, by_number)
                    config_maps.append(config_map)
                if "secretRef" in source:
                    source["secretRef"]["name"] = _local_secret(
                        play, by_kind_name, source["secretRef"]["name"], machine
                    )
            image_port_variable = IMAGE_PORT_VARIABLES.get(image_name)
            if image_port_variable and by_number:
                # The UI image has no ConfigMap: its port comes from a variable with the
                # cluster's value as default, so it is set only here.
                (port,) = by_number.values()
                container.setdefault("env", []).append(
                    {"name": image_port_variable, "value": str(port)}
                )
        play.documents.append(deployment)
    play.documents = [*config_maps, *play.documents]
    _refuse_cluster_leftovers(play)
    return play


def _without_istio(annotations: Mapping[str, str]) -> dict[str, str]:
    """No sidecar is injected here, so Istio's annotations have nothing to configure."""
    return {key: value for key, value in annotations.items() if "istio.io/" not in key}


def _pod_spec(spec: Manifest) -> None:
    # No API server mints service-account tokens here (and the pods mount none anyway).
    spec.pop("serviceAccountName", None)
    # One host and no scheduler: there is nothing to spread over.
    spec.pop("topologySpreadConstraints", None)


def _container(
    container: Manifest,
    machine: LocalMachine,
    volume_names: Mapping[str, str],
    free_port: Callable[[], int],
) -> dict[str, tuple[int, int]]:
    """Adapt one container in place; port name -> (synthesized port, local port)."""
    name = _image_name(container["image"])
    if name not in machine.image_refs:
        raise AdaptationError(f"no local image for {container['image']}")
    container["image"] = machine.image_refs[name]
    # podman 4.3 turns every containerPort into a port mapping, which host networking
    # refuses; on the host's network the port the process listens on is already reachable.
    own = {
        port["name"]: (port["containerPort"], free_port()) for port in container.pop("ports", [])
    }
    by_number = dict(own.values())
    for probe in PROBES:
        if "httpGet" in container.get(probe, {}):
            # podman 4.3 runs an httpGet probe as `curl` in a shell inside the container
            # (and a named port as port 0); our images carry neither, so it could only ever
            # report "unhealthy". The tests probe from outside instead.
            del container[probe]
        elif "grpc" in container.get(probe, {}):
            # Kept (podman 4.3 does not run gRPC probes), on the port the service uses here.
            grpc = container[probe]["grpc"]
            grpc["port"] = by_number.get(grpc["port"], grpc["port"])
    for variable in container.get("env", []):
        if "value" in variable:
            variable["value"] = _localise(variable["value"], machine.addresses)
    for mount in container.get("volumeMounts", []):
        mount["name"] = volume_names[mount["name"]]
    return own


def _localise_config(data: dict[str, str], machine: LocalMachine, ports: Mapping[int, int]) -> None:
    """Addresses to local ones; a key holding one of the container's ports to its new port."""
    for key, value in data.items():
        if value.isdigit() and key.endswith("_PORT") and int(value) in ports:
            data[key] = str(ports[int(value)])
        else:
            data[key] = _localise(value, machine.addresses)


def _localise(value: str, addresses: Mapping[str, str]) -> str:
    for cluster, local in addresses.items():
        value = value.replace(cluster, local)
    return value


def _local_secret(
    play: KubePlay,
    by_kind_name: Mapping[tuple[str, str], Manifest],
    name: str,
    machine: LocalMachine,
) -> str:
    """The run's copy of Secret `name`, with local values: its machine-wide name."""
    secret = _referenced(by_kind_name, "Secret", name)
    local_name = f"{name}-{machine.suffix}"
    play.secrets[local_name] = _secret_values(secret, machine)
    return local_name


def _secret_values(secret: Manifest, machine: LocalMachine) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in secret.get("stringData", {}).items():
        qualified = f"{secret['metadata']['name']}/{key}"
        if qualified in machine.secret_values:
            values[key] = machine.secret_values[qualified]
        elif key in machine.secret_values:
            values[key] = machine.secret_values[key]
        elif TERRAFORM_TOKEN.search(value):
            raise AdaptationError(f"Secret {secret['metadata']['name']}: no local value for {key}")
        else:
            values[key] = value
    return values


def _referenced(by_kind_name: Mapping[tuple[str, str], Manifest], kind: str, name: str) -> Manifest:
    if (kind, name) not in by_kind_name:
        raise AdaptationError(f"a Deployment reads {kind} {name}, which the app stack lacks")
    return by_kind_name[(kind, name)]


def _image_name(image_ref: str) -> str:
    match = IMAGE_NAME.search(image_ref)
    if match is None:
        raise AdaptationError(f"not a weather-mesh image: {image_ref}")
    return match["name"]


def _refuse_cluster_leftovers(play: KubePlay) -> None:
    """Nothing that only resolves in the cluster (a DNS name, a Terraform token) may reach
    podman: it would start a container that fails later, far from the cause."""
    text = json.dumps([play.documents, play.secrets])
    for pattern, what in (
        (TERRAFORM_TOKEN, "a Terraform token"),
        (re.compile(re.escape(CLUSTER_DOMAIN)), "an in-cluster address"),
    ):
        found = pattern.search(text)
        if found:
            context = text[max(0, found.start() - 60) : found.end() + 20]
            raise AdaptationError(f"{what} is left for podman: …{context}…")


def changed_fields(synthesized: Any, adapted: Any, path: str = "") -> set[str]:
    """The paths (in `ADAPTED`'s notation) where `adapted` differs from `synthesized`."""
    if isinstance(synthesized, dict) and isinstance(adapted, dict):
        changed: set[str] = set()
        for key in synthesized.keys() | adapted.keys():
            child = f"{path}.{key}" if path else key
            if key not in synthesized or key not in adapted:
                changed.add(child)
            else:
                changed |= changed_fields(synthesized[key], adapted[key], child)
        return changed
    if (
        path.endswith("containers")
        and isinstance(synthesized, list)
        and isinstance(adapted, list)
        and len(synthesized) == len(adapted)
    ):
        return set().union(
            *(changed_fields(s, a, f"{path}[]") for s, a in zip(synthesized, adapted, strict=True))
        )
    return set() if synthesized == adapted else {path}


def unexplained_changes(synthesized: Manifest, adapted: Manifest) -> set[str]:
    """Changes to a Deployment that no `ADAPTED` field (or a field inside one) accounts for."""
    return {
        path
        for path in changed_fields(synthesized, adapted)
        if not any(path == field or path.startswith(f"{field}.") for field in ADAPTED)
    }
