"""Pods, Jobs and Deployments on the test node: REST paths of the release namespace's objects, pods run to completion,
and the waits on them, which end as soon as the pods they watch stop making progress and then say why, with the pods'
events and the kubelet's and containerd's last error lines about them."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.k8s import controlplane as cp
from tests.k8s import node as nodes
from tests.k8s import render

NAMESPACE = render.namespace()
# A wait on pods fails once they show nothing new (phase, container states, events) for this long: a healthy pod
# changes well within it, even a Spark driver starting on two busy cores.
STALL = 240
# The longest a pod of the suite's own may run, progress or not: a first Spark query on two busy cores.
POD_TIMEOUT = 900
# A klog line of the kubelet at level error ("E1207 02:31:00.000000 ..."), a logrus line of containerd's.
KUBELET_ERROR = re.compile(r"^E\d{4} ")
CONTAINERD_ERROR = re.compile(r"\blevel=error\b")
LOG_LINES = 8


def namespaced(kind: str, name: str = "", namespace: str = NAMESPACE) -> str:
    """REST path of a namespace's objects of a kind ("apps/v1/deployments", "v1/pods")."""
    group = "/api" if kind.startswith("v1/") else "/apis"
    version, plural = kind.rsplit("/", 1)
    return f"{group}/{version}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def selected(api: cp.Api, kind: str, selector: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(namespaced(kind, namespace=namespace) + "?labelSelector=" + quote(selector))[
        "items"
    ]
    return items


def of(release: str, component: str) -> str:
    """The label selector of a release's component."""
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}"


def job_done(api: cp.Api, name: str) -> bool:
    status = api.get(namespaced("batch/v1/jobs", name)).get("status", {})
    if status.get("failed", 0) and not status.get("active", 0) and not status.get("succeeded", 0):
        raise AssertionError(f"job {name} failed: {status}")
    return bool(status.get("succeeded", 0))


def available(api: cp.Api, deployment: str) -> bool:
    status = api.get(namespaced("apps/v1/deployments", deployment)).get("status", {})
    return bool(status.get("availableReplicas", 0) >= 1)


def pod_log(api: cp.Api, pod: str, namespace: str = NAMESPACE) -> str:
    """What `kubectl logs` shows: the API server reads it from the kubelet."""
    return str(api.get(namespaced("v1/pods", pod, namespace) + "/log"))


def _containers(pod: dict[str, Any]) -> tuple[tuple[str, str, str, bool], ...]:
    """Each container's name, state (waiting, running, terminated), its reason and readiness."""
    status = pod.get("status", {})
    found = []
    for container in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        state, detail = next(iter(container["state"].items()), ("", {}))
        found.append((container["name"], state, detail.get("reason", ""), bool(container.get("ready"))))
    return tuple(found)


def _last_lines(log: Path, pattern: re.Pattern[str], keys: set[str]) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if pattern.search(line) and any(key in line for key in keys)][-LOG_LINES:]


@dataclass(frozen=True)
class Pods:
    """The pods of a namespace a label selector selects, on the node, as a wait watches them."""

    api: cp.Api
    node: nodes.Node
    selector: str
    namespace: str = NAMESPACE

    def listed(self) -> list[dict[str, Any]]:
        return selected(self.api, "v1/pods", self.selector, self.namespace)

    def events(self, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The pods' events, oldest first."""
        uids = {pod["metadata"]["uid"] for pod in pods}
        items: list[dict[str, Any]] = self.api.get(namespaced("v1/events", namespace=self.namespace))["items"]
        ours = [event for event in items if event["involvedObject"].get("uid") in uids]
        return sorted(ours, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def state(self) -> Hashable:
        """What changes as the pods make progress; an event's count and times are left out, so that the same event
        again (a back-off) is no progress."""
        pods = self.listed()
        return (
            frozenset((pod["metadata"]["name"], pod["status"].get("phase"), _containers(pod)) for pod in pods),
            frozenset((e["involvedObject"]["name"], e.get("reason"), e.get("message")) for e in self.events(pods)),
        )

    def _ids(self, pod: dict[str, Any]) -> set[str]:
        """Names the kubelet's and containerd's lines about the pod carry: its uid and name, and its containers' and
        sandbox's ids."""
        meta = pod["metadata"]
        ids = {meta["uid"], f'pod="{meta["namespace"]}/{meta["name"]}"'}
        with suppress(nodes.NodeError):
            of_pod = f'labels."io.kubernetes.pod.uid"=={meta["uid"]}'
            ids |= set(self.node.ctr("containers", "ls", "--quiet", of_pod).split())
        return ids

    def explain(self) -> str:
        """Each pod's phase and containers, its events, and the kubelet's and containerd's last error lines about it."""
        logs = {process.name: process.log for process in self.node.processes}
        try:
            pods = self.listed()
            events = self.events(pods)
        except (OSError, cp.ControlPlaneError) as exc:
            return f"the pods of {self.selector} could not be read: {exc}"
        if not pods:
            return f"no pod of {self.namespace} matches {self.selector}"
        parts = []
        for pod in pods:
            name = pod["metadata"]["name"]
            parts.append(f"pod {name}: {pod['status'].get('phase')}, containers {_containers(pod)}")
            parts += [
                f"  event {e.get('reason')}: {e.get('message')}" for e in events if e["involvedObject"]["name"] == name
            ][-LOG_LINES:]
            ids = self._ids(pod)
            for process, pattern in (("kubelet", KUBELET_ERROR), ("containerd", CONTAINERD_ERROR)):
                if process in logs:
                    parts += [f"  {process}: {line}" for line in _last_lines(logs[process], pattern, ids)]
        return "\n".join(parts)


def wait_on_pods(
    what: str,
    check: Callable[[], bool],
    pods: Pods,
    timeout: float = POD_TIMEOUT,
    *,
    stall: float = STALL,
    also: Callable[[], Hashable] = tuple,
) -> None:
    """Wait for ``check`` while the pods make progress (or ``also``, e.g. rows a layer has written, changes): a wait
    with none for ``stall`` seconds fails, saying what the pods are doing and why."""
    cp.wait_for(what, check, timeout, 2, progress=lambda: (pods.state(), also()), stall=stall, explain=pods.explain)


def python_pod(image: str, script: str) -> dict[str, Any]:
    """A pod spec of one container running ``script`` with the image's python3, as an unprivileged user on a read-only
    root."""
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python3", "-c", script],
        "securityContext": {"runAsUser": 10001, "readOnlyRootFilesystem": True},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {"containers": [container]}


def start_pod(
    api: cp.Api, node: nodes.Node, namespace: str, name: str, spec: dict[str, Any], *, scheduled: bool = False
) -> Pods:
    """Create a pod that runs once, placed on ``node`` by name, or by the scheduler if ``scheduled``."""
    placed = {} if scheduled else {"nodeName": node.name}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {**placed, "restartPolicy": "Never", **spec},
    }
    api.apply(namespaced("v1/pods", name, namespace), pod)
    return Pods(api, node, f"app={name}", namespace)


def finished(pods: Pods, name: str, stall: float = STALL) -> dict[str, Any]:
    """Wait for the pod to succeed or fail; its log growing counts as progress. Returns its last status."""
    path = namespaced("v1/pods", name, pods.namespace)

    def done() -> bool:
        return pods.api.get(path)["status"].get("phase") in ("Succeeded", "Failed")

    def logged() -> int:
        with suppress(cp.ControlPlaneError):
            return len(pod_log(pods.api, name, pods.namespace))
        return -1  # no log before the container starts

    wait_on_pods(f"pod {name} to finish", done, pods, stall=stall, also=logged)
    status: dict[str, Any] = pods.api.get(path)["status"]
    return status


def run_pod(
    api: cp.Api, node: nodes.Node, namespace: str, name: str, spec: dict[str, Any], *, scheduled: bool = False
) -> dict[str, Any]:
    """Run a pod to completion (see start_pod); returns its last status."""
    return finished(start_pod(api, node, namespace, name, spec, scheduled=scheduled), name)


def terminated(status: dict[str, Any]) -> dict[str, Any]:
    (state,) = [c["state"]["terminated"] for c in status["containerStatuses"]]
    return dict(state)
