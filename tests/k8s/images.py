"""Images for the test node, built here since none can be pulled: a Debian base made by debootstrap and taken in by
`docker import`, the stand-ins of tests/k8s/standins/ on it, then the project's own Dockerfiles, unchanged, on the
stand-ins. Docker is Debian's docker.io, its dockerd started here on a socket of its own; builds use the legacy
builder on the host's network, and the bases trust the host's CA bundle, since TLS to the registries is intercepted.

Everything is cached under .cryptolake/tools/k8s/images: the rootfs by suite, Docker's images in its data root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptolake.k8s import tools
from cryptolake.local.paths import REPO_ROOT
from tests.k8s import controlplane as cp
from tests.k8s import node as nodes

IMAGES_DIR = tools.TOOLS_DIR / "images"
# The mirror apt uses here; debootstrap fetches the same suite from it.
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
DEBIAN_IMAGE = f"cryptolake-test/debian:{DEBIAN_SUITE}"
DOCKER_PACKAGES = {"dockerd": "docker.io", "docker": "docker.io", "debootstrap": "debootstrap"}
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
STANDINS = Path(__file__).parent / "standins"


def debian_rootfs(suite: str = DEBIAN_SUITE) -> Path:
    """A minimal Debian root filesystem as a tarball, made by debootstrap once per suite."""
    archive = IMAGES_DIR / f"debian-{suite}.tar"
    if archive.exists():
        return archive
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    root = IMAGES_DIR / f"debian-{suite}.rootfs"
    shutil.rmtree(root, ignore_errors=True)
    nodes.run_command(["debootstrap", "--variant=minbase", suite, root, DEBIAN_MIRROR])
    partial = archive.with_suffix(".part")
    nodes.run_command(["tar", "--numeric-owner", "-C", root, "-cf", partial, "."])
    partial.replace(archive)
    shutil.rmtree(root)
    return archive


@dataclass(frozen=True)
class Docker:
    host: str

    def __call__(self, *args: str | Path) -> str:
        # The legacy builder: BuildKit would want its frontend image, which cannot be pulled.
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}
        return nodes.run_command(["docker", *args], env=env)

    def has(self, image: str) -> bool:
        return bool(self("images", "--quiet", image).strip())

    def label(self, image: str, key: str) -> str | None:
        """A label of the image, or None if there is no such image."""
        if not self.has(image):
            return None
        return self("image", "inspect", "--format", f'{{{{index .Config.Labels "{key}"}}}}', image).strip()


@contextmanager
def dockerd(folder: Path, timeout: float) -> Iterator[Docker]:
    """Debian's dockerd on a socket of its own, no bridge and no iptables rules (builds use the host's network),
    its images kept in the cache between runs."""
    nodes.install_packages(DOCKER_PACKAGES)
    socket = folder / "docker.sock"
    flags = {
        # Resolved: runc refuses a container's root reached through a symlink, as .cryptolake may be.
        "data-root": IMAGES_DIR.resolve() / "docker",
        "exec-root": folder / "exec",
        "pidfile": folder / "docker.pid",
        "host": f"unix://{socket}",
        "bridge": "none",
        "iptables": "false",
        "ip6tables": "false",
    }
    process = cp.spawn("dockerd", ["dockerd", *[f"--{k}={v}" for k, v in flags.items()]], folder)
    try:
        docker = Docker(f"unix://{socket}")
        cp.wait_for("dockerd", lambda: process.alive() and bool(docker("version")), timeout)
        yield docker
    finally:
        process.stop()
        # Its network namespace's mount stays behind otherwise.
        nodes.unmount_under(folder)


def debian_image(docker: Docker) -> str:
    if not docker.has(DEBIAN_IMAGE):
        docker("import", debian_rootfs(), DEBIAN_IMAGE)
    return DEBIAN_IMAGE


def default_base(dockerfile: Path, arg: str) -> str:
    """The default of a Dockerfile's ``ARG <arg>=...``: the official image it builds on."""
    for line in dockerfile.read_text().splitlines():
        if line.startswith(f"ARG {arg}="):
            return line.split("=", 1)[1].strip()
    raise LookupError(f"no ARG {arg}= in {dockerfile}")


def _digest(folder: Path, files: dict[str, Path]) -> str:
    content = hashlib.sha256()
    named = {path.relative_to(folder).as_posix(): path for path in folder.rglob("*") if path.is_file()} | files
    for name, path in sorted(named.items()):
        content.update(name.encode() + b"\0" + path.read_bytes())
    return content.hexdigest()[:12]


SOURCE_LABEL = "cryptolake.test.source"


def build_standin(
    docker: Docker, name: str, tag: str, build_args: dict[str, str], files: dict[str, Path] | None = None
) -> str:
    """The stand-in of tests/k8s/standins/<name>, built on the Debian base and tagged ``tag``, rebuilt only when its
    folder or ``files`` change. Its context is a git-ignored copy of that folder with the host's CA bundle and
    ``files`` (name in the context -> file here) beside it."""
    source = STANDINS / name
    files = files or {}
    digest = _digest(source, files)
    if docker.label(tag, SOURCE_LABEL) == digest:
        return tag
    context = IMAGES_DIR / "contexts" / name
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(source, context)
    for target, path in {HOST_CA_BUNDLE.name: HOST_CA_BUNDLE, **files}.items():
        shutil.copyfile(path, context / target)
        shutil.copymode(path, context / target)
    args = {"BASE": debian_image(docker), **build_args}
    flags = [f"--build-arg={key}={value}" for key, value in args.items()]
    docker("build", "--network=host", f"--label={SOURCE_LABEL}={digest}", *flags, "--tag", tag, context)
    return tag


def build_project_image(docker: Docker, dockerfile: Path, tag: str, build_args: dict[str, str]) -> str:
    """One of the project's Dockerfiles, unchanged, from the repository root as skaffold builds it."""
    flags = [f"--build-arg={key}={value}" for key, value in build_args.items()]
    docker("build", "--network=host", *flags, "--file", dockerfile, "--tag", tag, REPO_ROOT)
    return tag


def save(docker: Docker, tag: str, folder: Path) -> Path:
    """The image as a `docker save` archive, which `ctr images import` loads into the node."""
    archive = folder / (tag.replace("/", "_").replace(":", "_") + ".tar")
    docker("save", "--output", archive, tag)
    return archive
