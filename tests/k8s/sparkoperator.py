"""The Spark Operator of the installed release, run from the pinned binary out of cluster against the test control
plane: each of its Deployments' own arguments, as its own service account, with only the listening addresses changed.
The webhook is reached on loopback through a url clientConfig, since no Service routes anywhere here."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptolake.local.procs import free_port
from tests.k8s import controlplane as cp

COMPONENTS = ("webhook", "controller")


def flag(args: list[str], name: str) -> str:
    """Value of ``--name=value`` in a container's arguments."""
    values = [arg.split("=", 1)[1] for arg in args if arg.startswith(f"--{name}=")]
    if not values:
        raise LookupError(f"no --{name} in {args}")
    return values[-1]


def pod_spec(api: cp.Api, namespace: str, deployment: str) -> dict[str, Any]:
    spec: dict[str, Any] = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}")["spec"]
    return dict(spec["template"]["spec"])


def service_account_kubeconfig(plane: cp.ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig holding a token of the service account, as a pod of it would get one."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 7200}}
    token = plane.api.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", request)
    return cp.write_kubeconfig(path, plane.api.server, plane.ca[0], {"token": token["status"]["token"]})


def seed_webhook_certs(plane: cp.ControlPlane, args: list[str], folder: Path) -> Path:
    """The webhook's certificate Secret, made here so that it also names 127.0.0.1; the webhook keeps a valid one
    for its Service's name. Returns the CA's certificate."""
    service = f"{flag(args, 'webhook-svc-name')}.{flag(args, 'webhook-svc-namespace')}.svc"
    ca = cp.make_ca(folder, "webhook-ca")
    server = cp.make_cert(ca, folder, "webhook", f"/CN={service}", hosts=(service, "localhost", cp.LOOPBACK))
    files = {"ca-cert.pem": ca[0], "ca-key.pem": ca[1], "server-cert.pem": server[0], "server-key.pem": server[1]}
    name, namespace = flag(args, "webhook-secret-name"), flag(args, "webhook-secret-namespace")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(path.read_bytes()).decode() for key, path in files.items()},
    }
    plane.api.apply(f"/api/v1/namespaces/{namespace}/secrets/{name}", secret)
    return ca[0]


def point_webhooks_at_loopback(api: cp.Api, args: list[str], port: int, ca_cert: Path) -> None:
    """Each webhook of the release's configurations goes to https://127.0.0.1:<port><its Service path>."""
    bundle = base64.b64encode(ca_cert.read_bytes()).decode()
    for kind, name in (
        ("mutatingwebhookconfigurations", flag(args, "mutating-webhook-name")),
        ("validatingwebhookconfigurations", flag(args, "validating-webhook-name")),
    ):
        path = f"/apis/admissionregistration.k8s.io/v1/{kind}/{name}"
        config = api.get(path)
        for webhook in config["webhooks"]:
            service = webhook["clientConfig"].pop("service")
            webhook["clientConfig"] = {"url": f"https://{cp.LOOPBACK}:{port}{service['path']}", "caBundle": bundle}
        api.request("PUT", path, config)


@contextmanager
def running(
    plane: cp.ControlPlane, binary: Path, release: str, namespace: str, spark_home: Path, folder: Path, timeout: float
) -> Iterator[list[cp.Process]]:
    """The release's webhook, then its controller, each ready (its health endpoint answers) before this yields;
    their certificates and kubeconfigs go to ``folder``."""
    processes: list[cp.Process] = []
    try:
        for component in COMPONENTS:
            spec = pod_spec(plane.api, namespace, f"{release}-{component}")
            args = list(spec["containers"][0]["args"])
            kubeconfig = service_account_kubeconfig(
                plane, namespace, spec["serviceAccountName"], folder / f"{component}.kubeconfig"
            )
            env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
            health = free_port()
            # Loopback instead of every interface for the probes and metrics; later flags win.
            args += [f"--health-probe-bind-address={cp.LOOPBACK}:{health}"]
            args += [f"--metrics-bind-address={cp.LOOPBACK}:{free_port()}"]
            if component == "webhook":
                port = free_port()
                ca_cert = seed_webhook_certs(plane, args, folder)
                point_webhooks_at_loopback(plane.api, args, port, ca_cert)
                args += [f"--webhook-port={port}", f"--webhook-cert-dir={folder / 'serving-certs'}"]
            else:
                # spark-submit gets the API server from these, as in a pod, and its credentials from KUBECONFIG.
                env |= {
                    "SPARK_HOME": str(spark_home),
                    "KUBERNETES_SERVICE_HOST": str(cp.NODE_ADDRESS.ip),
                    "KUBERNETES_SERVICE_PORT": str(plane.port),
                }
            process = cp.spawn(f"spark-operator-{component}", [binary, *args], plane.processes[0].log.parent, env)
            processes.append(process)
            cp.wait_healthy(process, f"http://{cp.LOOPBACK}:{health}/readyz", timeout)
        yield processes
    finally:
        for process in reversed(processes):
            process.stop()
