"""A Kubernetes control plane for the k8s tests: etcd and kube-apiserver from the pinned builds, with self-made
certificates, an admin kubeconfig and cluster ranges that the kernel drops, but for the one /24 of the pods' bridge.

The API server listens on the bridge's host address, the node's address, so that pods reach it through the
`kubernetes` Service as they do in kind; etcd stays on loopback. What runs pods is node.py's.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

import yaml

from cryptolake.local.procs import free_port

# RFC 2544's benchmarking range: never routed on the internet, and unlikely to be anyone's real network.
SERVICE_CIDR = IPv4Network("198.18.0.0/16")
POD_CIDR = IPv4Network("198.19.0.0/16")
CLUSTER_CIDRS = (SERVICE_CIDR, POD_CIDR)
LOOPBACK = "127.0.0.1"
# The pods' bridge holds one /24 of the pod range, away from the addresses dropped() probes (the first, middle and
# last of the /16); its host side is the node's address.
POD_SUBNET = IPv4Network("198.19.64.0/24")
BRIDGE = "cl-pods0"
NODE_ADDRESS = IPv4Interface(f"{POD_SUBNET[1]}/{POD_SUBNET.prefixlen}")
CLUSTER_DOMAIN = "cluster.local"


class ControlPlaneError(RuntimeError):
    """The control plane could not be made safe, started or reached."""


def wait_for(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    interval: float = 0.5,
    *,
    progress: Callable[[], Hashable] | None = None,
    stall: float = 0,
    explain: Callable[[], str] = str,
) -> None:
    """Poll ``check`` until it holds; a check that raises counts as not yet. With ``progress``, the wait also ends
    once ``stall`` seconds pass without a state of it never seen before (a state seen earlier, as in a back-off loop,
    is none), and its error carries ``explain()``."""
    start = time.monotonic()
    seen: set[Hashable] = set()
    last_new = start
    while True:
        try:
            if check():
                return
        except (OSError, ControlPlaneError):
            pass
        now = time.monotonic()
        if progress is not None:
            with suppress(OSError, ControlPlaneError):
                state = progress()
                if state not in seen:
                    seen.add(state)
                    last_new = now
            if now - last_new > stall:
                raise ControlPlaneError(f"no progress in {stall:.0f}s waiting for {what}\n{explain()}")
        if now - start > timeout:
            raise ControlPlaneError(f"timed out after {timeout:.0f}s waiting for {what}\n{explain()}".rstrip())
        time.sleep(interval)


# --- Safety: addresses of the cluster ranges never leave the machine ---------------------------------------------


def dropped(network: IPv4Network) -> bool:
    """Whether the kernel refuses to route any packet to the range: connecting a UDP socket makes it look the route
    up (sending nothing), and a blackhole route fails that lookup."""
    for address in (network[1], network[network.num_addresses // 2], network[-2]):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((str(address), 9))
            except OSError:
                continue
            return False
    return True


@contextmanager
def blackholed(networks: tuple[IPv4Network, ...] = CLUSTER_CIDRS) -> Iterator[None]:
    """Blackhole routes for the cluster ranges while the control plane runs (needs root); removes only its own."""
    added = []
    try:
        for network in networks:
            if not dropped(network):
                subprocess.run(["ip", "route", "add", "blackhole", str(network)], check=True, capture_output=True)
                added.append(network)
            if not dropped(network):
                raise ControlPlaneError(f"{network} is still routed: a more specific route or a rule overrides it")
        yield
    finally:
        for network in added:
            subprocess.run(["ip", "route", "del", "blackhole", str(network)], check=False, capture_output=True)


# The nftables table that keeps the pods' packets on this machine once the bridge forwards (kube-proxy's Services
# need it): nothing crosses between the bridge and another interface.
GUARD_TABLE = "cryptolake_pods_guard"
GUARD_RULES = f"""table inet {GUARD_TABLE} {{
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    iifname "{BRIDGE}" oifname != "{BRIDGE}" drop
    oifname "{BRIDGE}" iifname != "{BRIDGE}" drop
  }}
}}
"""


def _run(args: list[str], stdin: str | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ControlPlaneError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def guarded() -> bool:
    """Whether the guard table is in the kernel's ruleset."""
    return GUARD_TABLE in _run(["nft", "list", "tables"])


# --- One test node per machine ------------------------------------------------------------------------------------

# The kernel frees the lock when its holder dies, however it dies: a run holding it knows that the bridge, tables and
# routes named here, if present, were left by a killed run, never by a live one.
NODE_LOCK = Path("/run/lock/cryptolake-test-node.lock")
# kube-proxy's own tables in nftables mode (addons.py runs it).
PROXY_TABLES = ("ip kube-proxy", "ip6 kube-proxy")


@contextmanager
def sole_node() -> Iterator[None]:
    """This machine's test-node lock, held until exit; fails at once if another run holds it."""
    NODE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with NODE_LOCK.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ControlPlaneError(f"another test node runs on this machine: it holds {NODE_LOCK}") from None
        yield


def reclaim(
    bridge: str = BRIDGE,
    tables: tuple[str, ...] = (f"inet {GUARD_TABLE}", *PROXY_TABLES),
    routes: tuple[IPv4Network, ...] = CLUSTER_CIDRS,
) -> list[str]:
    """Delete what a killed run left in the kernel: the bridge with the pods' ends of its ports, the nftables tables
    and the blackhole routes; returns what it deleted. Call under ``sole_node()``."""
    deleted = []
    ports = Path(f"/sys/class/net/{bridge}/brif")
    if ports.exists():
        for port in sorted(p.name for p in ports.iterdir()):
            # Deleting one end of a veth pair deletes the other, in the pod's network namespace.
            _run(["ip", "link", "del", port])
        _run(["ip", "link", "del", bridge])
        deleted.append(f"bridge {bridge}")
    listed = set(_run(["nft", "list", "tables"]).splitlines())
    for table in tables:
        if f"table {table}" in listed:
            _run(["nft", "delete", "table", *table.split()])
            deleted.append(f"table {table}")
    blackholes = _run(["ip", "route", "show", "type", "blackhole"]).split()
    for network in routes:
        if str(network) in blackholes:
            _run(["ip", "route", "del", "blackhole", str(network)])
            deleted.append(f"blackhole route {network}")
    return deleted


@contextmanager
def pod_network() -> Iterator[IPv4Interface]:
    """The pods' bridge with the node's address, forwarding only between its own ports, deleted on exit; call inside
    ``blackholed()``. The CNI bridge plugin attaches the pods to it."""
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        raise ControlPlaneError(f"{BRIDGE} already exists: another test node runs, or one was left behind")
    _run(["nft", "-f", "-"], GUARD_RULES)
    try:
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", str(NODE_ADDRESS), "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        # A Service's packets are rewritten to a pod and routed back out of the bridge: forwarding on the bridge only.
        Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/forwarding").write_text("1")
        yield NODE_ADDRESS
    finally:
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
        subprocess.run(["nft", "delete", "table", "inet", GUARD_TABLE], capture_output=True, check=False)


# --- Certificates, with the openssl CLI ----------------------------------------------------------------------------


def _openssl(*args: str | Path) -> None:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ControlPlaneError(f"openssl {args[0]} failed: {done.stderr}")


def make_key(path: Path) -> Path:
    # PKCS#1: the Spark Operator's webhook parses only that form.
    _openssl("genrsa", "-traditional", "-out", path, "2048")
    return path


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key = make_key(folder / f"{name}.key")
    cert = folder / f"{name}.crt"
    _openssl("req", "-x509", "-new", "-key", key, "-out", cert, "-days", "365", "-subj", f"/CN={name}")
    return cert, key


def make_cert(
    ca: tuple[Path, Path], folder: Path, name: str, subject: str, *, hosts: tuple[str, ...] = (), client: bool = False
) -> tuple[Path, Path]:
    """A certificate signed by ``ca``: a server's for ``hosts`` (names or IPs), or a client's. A year long, since the
    operator's webhook regenerates one that expires within 180 days."""
    key = make_key(folder / f"{name}.key")
    csr, cert, extensions = (folder / f"{name}{suffix}" for suffix in (".csr", ".crt", ".ext"))
    _openssl("req", "-new", "-key", key, "-out", csr, "-subj", subject)
    lines = [f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}"]
    if hosts:
        alt = [f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts]
        lines.append(f"subjectAltName={','.join(alt)}")
    extensions.write_text("\n".join(lines) + "\n")
    ca_cert, ca_key = ca
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-days", "365",
        "-extfile", extensions, "-out", cert,
    )  # fmt: skip
    return cert, key


# --- Processes that cannot outlive the tests ----------------------------------------------------------------------


def _die_with_parent() -> None:
    # Killed with the test run even if it dies without tearing down (PR_SET_PDEATHSIG = 1).
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        if self.popen.poll() is None:
            return True
        raise ControlPlaneError(f"{self.name} exited {self.popen.returncode}:\n{self.tail()}")

    def tail(self, size: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-size:]

    def stop(self, grace: float = 15) -> None:
        """Stop it and whatever it forked (spark-submit): each process leads its own process group."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


def spawn(name: str, args: list[str | Path], logs: Path, env: dict[str, str] | None = None) -> Process:
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [str(a) for a in args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return Process(name, popen, log)


# --- The API ------------------------------------------------------------------------------------------------------


class ApiError(ControlPlaneError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Api:
    """A minimal client of the API server, as the admin."""

    server: str
    ca: Path
    cert: Path
    key: Path

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        timeout: float = 60,
    ) -> Any:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.cert), str(self.key))
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method)  # noqa: S310 - https server
        request.add_header("Content-Type", content_type)
        request.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(request, context=context, timeout=timeout) as response:  # noqa: S310
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace")) from None
        return json.loads(text) if text.startswith(("{", "[")) else text

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def apply(self, path: str, obj: dict[str, Any], *, dry_run: bool = False) -> Any:
        """Server-side apply of one object at its own path; forced, as the tests' own field manager."""
        query = "?fieldManager=cryptolake-tests&force=true" + ("&dryRun=All" if dry_run else "")
        return self.request("PATCH", path + query, obj, content_type="application/apply-patch+yaml")


@dataclass(frozen=True)
class Resource:
    plural: str
    namespaced: bool


def discover(api: Api) -> dict[tuple[str, str], Resource]:
    """(apiVersion, kind) -> the resource serving it, from the API server's discovery documents."""
    found: dict[tuple[str, str], Resource] = {}
    versions = ["v1"] + [
        version["groupVersion"] for group in api.get("/apis")["groups"] for version in group["versions"]
    ]
    for version in versions:
        listing = api.get("/api/v1" if version == "v1" else f"/apis/{version}")
        for resource in listing["resources"]:
            if "/" not in resource["name"]:
                found[(version, resource["kind"])] = Resource(resource["name"], resource["namespaced"])
    return found


def object_path(resources: dict[tuple[str, str], Resource], obj: dict[str, Any], namespace: str) -> str:
    """REST path of an object; a namespaced object without a namespace goes to ``namespace``."""
    version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
    resource = resources[(version, kind)]
    base = "/api/v1" if version == "v1" else f"/apis/{version}"
    if resource.namespaced:
        base += f"/namespaces/{meta.get('namespace', namespace)}"
    return f"{base}/{resource.plural}/{meta['name']}"


# --- etcd and the API server ---------------------------------------------------------------------------------------


def write_kubeconfig(path: Path, server: str, ca: Path, user: dict[str, str]) -> Path:
    """A kubeconfig of one cluster and one user (client certificate or token)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "user"}}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class ControlPlane:
    api: Api
    kubeconfig: Path
    ca: tuple[Path, Path]
    processes: list[Process]

    @property
    def port(self) -> int:
        return int(self.api.server.rsplit(":", 1)[1])


def healthy(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own http URLs
        return bool(response.status == 200)


def wait_healthy(process: Process, url: str, timeout: float) -> None:
    """Wait until the process answers 200 at ``url``; its exit ends the wait at once."""
    wait_for(process.name, lambda: process.alive() and healthy(url), timeout)


def _flags(flags: dict[str, object]) -> list[str]:
    return [f"--{name}={value}" for name, value in flags.items()]


@contextmanager
def running(etcd: Path, apiserver: Path, folder: Path, timeout: float) -> Iterator[ControlPlane]:
    """etcd on loopback and kube-apiserver on the node's address, torn down on exit; call inside ``pod_network()``."""
    pki, logs = folder / "pki", folder / "logs"
    pki.mkdir(parents=True)
    logs.mkdir()
    ca = make_ca(pki, "cluster-ca")
    # Every name a pod may call it by: the `kubernetes` Service's address and DNS names, and the node's address.
    service_names = [f"kubernetes.default.svc.{CLUSTER_DOMAIN}", "kubernetes.default.svc", "kubernetes.default"]
    hosts = (str(NODE_ADDRESS.ip), str(SERVICE_CIDR[1]), "kubernetes", *service_names)
    serving = make_cert(ca, pki, "apiserver", "/CN=kube-apiserver", hosts=hosts)
    admin = make_cert(ca, pki, "admin", "/O=system:masters/CN=cryptolake-tests", client=True)
    accounts_key = make_key(pki / "service-accounts.key")
    accounts_pub = pki / "service-accounts.pub"
    _openssl("rsa", "-in", accounts_key, "-pubout", "-out", accounts_pub)

    client_port, peer_port, api_port = free_port(), free_port(), free_port(str(NODE_ADDRESS.ip))
    etcd_url = f"http://{LOOPBACK}:{client_port}"
    peer_url = f"http://{LOOPBACK}:{peer_port}"
    etcd_flags = {
        "data-dir": folder / "etcd",
        "name": "cryptolake",
        "listen-client-urls": etcd_url,
        "advertise-client-urls": etcd_url,
        "listen-peer-urls": peer_url,
        "initial-advertise-peer-urls": peer_url,
        "initial-cluster": f"cryptolake={peer_url}",
    }
    apiserver_flags = {
        "etcd-servers": etcd_url,
        # Its own lease names this address as the `kubernetes` Service's endpoint.
        "bind-address": NODE_ADDRESS.ip,
        "advertise-address": NODE_ADDRESS.ip,
        "secure-port": api_port,
        "service-cluster-ip-range": SERVICE_CIDR,
        "tls-cert-file": serving[0],
        "tls-private-key-file": serving[1],
        "client-ca-file": ca[0],
        "cert-dir": pki,
        "service-account-issuer": f"https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
        "service-account-key-file": accounts_pub,
        "service-account-signing-key-file": accounts_key,
        "authorization-mode": "RBAC",
        # How it reads pods' logs (`kubectl logs`) from the kubelet, which trusts the cluster CA's clients.
        "kubelet-client-certificate": admin[0],
        "kubelet-client-key": admin[1],
        # By its address: the node's name would be looked up in this machine's DNS.
        "kubelet-preferred-address-types": "InternalIP",
        "profiling": "false",
    }
    processes: list[Process] = []
    try:
        processes.append(spawn("etcd", [etcd, *_flags(etcd_flags)], logs))
        wait_healthy(processes[0], f"{etcd_url}/health", timeout)
        processes.append(spawn("kube-apiserver", [apiserver, *_flags(apiserver_flags)], logs))
        server = f"https://{NODE_ADDRESS.ip}:{api_port}"
        api = Api(server, ca[0], *admin)
        wait_for("kube-apiserver", lambda: processes[1].alive() and api.get("/readyz") == "ok", timeout)
        kubeconfig = write_kubeconfig(
            folder / "admin.kubeconfig",
            server,
            ca[0],
            {"client-certificate": str(admin[0]), "client-key": str(admin[1])},
        )
        yield ControlPlane(api, kubeconfig, ca, processes)
    finally:
        for process in reversed(processes):
            process.stop()
