"""The Dockerfiles agree with pyproject, uv.lock, the jar pins and the chart: versions, paths, users."""

from __future__ import annotations

import fnmatch
import itertools
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from core.jars import read_pins
from core.settings import Settings
from cryptolake.local.paths import REPO_ROOT
from tests.k8s.render import pyspark_version

SPARK_DOCKERFILE = REPO_ROOT / "Dockerfile"
INGESTOR_DOCKERFILE = REPO_ROOT / "images" / "ingestor" / "Dockerfile"
DOCKERFILES = (SPARK_DOCKERFILE, INGESTOR_DOCKERFILE)
PROJECT_DIR = "/opt/cryptolake"


@dataclass(frozen=True)
class Contents:
    dependencies: set[str]  # what the image's venv holds, by uv.lock
    packages: set[str]  # the project's packages it copies in


# What each image contains: core's dependencies (the settings model's), its role's dependency group (pyproject.toml)
# and the packages that role runs. The Spark image leaves pyspark to its base, whose own copy spark-submit puts on
# PYTHONPATH.
CORE = {
    "pydantic-settings",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-extensions",
    "typing-inspection",
    "python-dotenv",
}
IMAGES = {
    INGESTOR_DOCKERFILE: Contents(
        CORE | {"confluent-kafka", "websocket-client", "prometheus-client"}, {"core", "ingestion"}
    ),
    # Delta's Python API (its jars are in spark-jars.txt) and what it needs besides pyspark.
    SPARK_DOCKERFILE: Contents(CORE | {"py4j", "delta-spark", "importlib-metadata", "zipp"}, {"core", "jobs"}),
}


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: self.args.get(m[1], m[0]), text)


def parse(path: Path) -> Dockerfile:
    """Instructions by stage, continuation lines joined; ARG defaults collected for ${...} expansion."""
    text = re.sub(r"\\\n", " ", path.read_text())
    parsed = Dockerfile({}, [])
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            parsed.args.setdefault(name, default.strip('"'))
        if keyword == "FROM":
            parsed.stages.append(Stage(parsed.expand(rest.split()[0])))
        elif parsed.stages:
            parsed.stages[-1].instructions.append((keyword, rest))
    return parsed


def copy_sources(dockerfile: Dockerfile) -> list[str]:
    """Sources of every COPY from the build context (not from another stage)."""
    sources = []
    for stage in dockerfile.stages:
        for rest in stage.args("COPY"):
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            if "--from=" not in rest:
                sources += words[:-1]
    return sources


def docker_context_includes(path: str) -> bool:
    """Whether .dockerignore (an allow-list) keeps `path` in the build context."""
    included = True
    for pattern in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            included = negate
    return included


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_copied_paths_exist_in_the_build_context(path: Path) -> None:
    sources = copy_sources(parse(path))
    assert sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert docker_context_includes(source), f"{source} is excluded by .dockerignore"


def test_spark_image_is_the_official_one_of_pysparks_version() -> None:
    dockerfile = parse(SPARK_DOCKERFILE)
    assert {stage.base for stage in dockerfile.stages} == {
        f"apache/spark:{pyspark_version()}-scala2.13-java21-python3-ubuntu"
    }


def test_deltas_python_api_is_the_version_of_its_jars() -> None:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    (api,) = [p["version"] for p in lock["package"] if p["name"] == "delta-spark"]
    jars = {jar.artifact: jar.version for jar in read_pins() if jar.group == "io.delta"}
    spark_minor = ".".join(pyspark_version().split(".")[:2])  # Delta builds a jar for each Spark minor version
    assert set(jars) == {f"delta-spark_{spark_minor}_2.13", "delta-storage"}
    assert set(jars.values()) == {api}


def test_spark_image_bakes_in_the_pinned_jars() -> None:
    dockerfile = parse(SPARK_DOCKERFILE)
    runs = [r for stage in dockerfile.stages for r in stage.args("RUN")]
    (fetch,) = [r for r in runs if "jars.py" in r]
    words = shlex.split(fetch)
    listed = Path(words[words.index("--list") + 1]).name
    assert listed == "spark-jars.txt" and "spark-jars.txt" in copy_sources(dockerfile)
    destination = words[words.index("--dest") + 1]
    final_copies = dockerfile.final.args("COPY")
    assert any(destination in c and c.rstrip().endswith("/opt/spark/jars/") for c in final_copies)
    assert read_pins(), "spark-jars.txt pins no jar"


def _flag_values(words: list[str], flag: str) -> list[str]:
    return [value for word, value in itertools.pairwise(words) if word == flag]


def locked_dependencies(sync: str) -> set[str]:
    """Every package a ``uv sync`` line installs, by uv.lock: the project's own dependencies and those of the groups
    it names, with theirs, but the ``--no-install-package`` ones (markers ignored: a superset on any platform)."""
    words = shlex.split(sync)
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    requires = {p["name"]: [d["name"] for d in p.get("dependencies", [])] for p in lock["package"]}
    project = next(p for p in lock["package"] if p["name"] == "cryptolake")
    wanted = requires["cryptolake"] + [
        d["name"] for group in _flag_values(words, "--group") for d in project["dev-dependencies"][group]
    ]
    found: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name not in found:
            found.add(name)
            wanted += requires[name]
    return found - set(_flag_values(words, "--no-install-package"))  # uv still installs what they depend on


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_each_image_installs_its_roles_dependencies_only(path: Path) -> None:
    (sync,) = [r for stage in parse(path).stages for r in stage.args("RUN") if "uv sync" in r]
    for flag in ("--frozen", "--no-default-groups", "--no-install-project"):
        assert flag in shlex.split(sync), f"{flag} missing from: {sync}"
    assert locked_dependencies(sync) == IMAGES[path].dependencies


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_each_image_holds_the_packages_it_runs_only(path: Path) -> None:
    packages = {source for source in copy_sources(parse(path)) if (REPO_ROOT / source / "__init__.py").is_file()}
    assert packages == IMAGES[path].packages
    assert f"PYTHONPATH={PROJECT_DIR}" in " ".join(parse(path).final.args("ENV"))


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_images_run_as_non_root(path: Path) -> None:
    users = parse(path).final.args("USER")
    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] not in ("0", "root")


def test_spark_image_holds_the_project_where_the_chart_runs_it() -> None:
    values = yaml.safe_load((REPO_ROOT / "charts" / "cryptolake" / "values.yaml").read_text())
    project_dir = values["spark"]["projectDir"]
    dockerfile = parse(SPARK_DOCKERFILE)
    assert project_dir in dockerfile.stages[0].args("WORKDIR")
    assert "./jobs" in [shlex.split(c)[-1] for c in dockerfile.stages[0].args("COPY")]
    assert any(c.split()[-1] == project_dir for c in dockerfile.final.args("COPY"))
    env = " ".join(dockerfile.final.args("ENV"))
    assert f"PYSPARK_PYTHON={project_dir}/.venv/bin/python" in env


def test_ingestor_image_exposes_the_default_port() -> None:
    assert parse(INGESTOR_DOCKERFILE).final.args("EXPOSE") == [str(Settings().ingestor_http_port)]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name or "root")
def test_uv_is_the_version_pyproject_requires(path: Path) -> None:
    required = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["uv"]["required-version"]
    makefile = re.search(r"^UV_VERSION := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert makefile is not None and required == f"=={makefile.group(1)}"
    assert required == f"=={parse(path).args['UV_VERSION']}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name or "root")
def test_no_frontend_image_is_pulled(path: Path) -> None:
    """A `# syntax=` directive makes BuildKit pull that frontend image first, which fails offline."""
    directives = [line for line in path.read_text().splitlines() if re.match(r"#\s*syntax\s*=", line, re.IGNORECASE)]
    assert not directives


def test_spark_image_can_use_the_bases_python_instead_of_downloading_one() -> None:
    """`--build-arg PYTHON=<path>` skips uv's download; left empty (the default), uv installs PYTHON_VERSION."""
    dockerfile = parse(SPARK_DOCKERFILE)
    assert dockerfile.args["PYTHON"] == ""
    build = dockerfile.stages[0]
    assert "PYTHON" in [rest.partition("=")[0] for rest in build.args("ARG")]
    runs = build.args("RUN")
    (install,) = [r for r in runs if "uv python install" in r]
    assert install.startswith('if [ -n "${PYTHON}" ]; then') and "else uv python install" in install
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs and all('--python "${PYTHON:-${PYTHON_VERSION}}"' in r for r in syncs)
