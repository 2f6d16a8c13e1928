"""What the rendered charts must agree on with the code, with each other and with the kind node.

The settings model is the contract: the workloads get exactly the env the code reads, secrets by reference, and
every cross-chart name (topic, bucket, services, Secret, service account) lines up with what the other chart makes.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from core.settings import Settings, env_names, secret_env_names
from cryptolake.k8s import chartgen
from cryptolake.local.paths import REPO_ROOT
from jobs.session import LOG4J2_CONFIG
from tests.k8s.render import CHARTS, VARIANTS, Renderer, by_kind, namespace, one, pyspark_version

LAYERS = ("bronze", "silver", "gold")
MIB = 1024**2
GIB = 1024**3
# What the kind node runs beside the stack: the control plane (kube-apiserver alone holds several hundred MiB,
# etcd, the controller manager and scheduler about 100 MiB each), the kubelet and containerd, CoreDNS, kindnet,
# kube-proxy and the local-path provisioner. They set few limits, so this is what they use, not what they declare.
SYSTEM_MEMORY = 1536 * MIB
# Spark's minimum overhead: what it gives a pod when memoryOverhead is unset and the heap is small.
SPARK_MIN_OVERHEAD = 384 * MIB
# The kind setup of docs/kubernetes.md states the node's size.
KIND_DOC = REPO_ROOT / "docs" / "kubernetes.md"
DOC_NODE = re.compile(r"You need Docker with at least (\d+) GiB of memory and (\d+) CPUs")


def workload_envs(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """env of every container that runs cryptolake code: the ingestor and each layer's driver and executor."""
    envs = {}
    for app in by_kind(docs, "SparkApplication"):
        for role in ("driver", "executor"):
            envs[f"{app['metadata']['name']} {role}"] = app["spec"][role]["env"]
    for deployment in by_kind(docs, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            envs[f"{deployment['metadata']['name']} {container['name']}"] = container["env"]
    return envs


def settings_of(env: list[dict[str, Any]]) -> Settings:
    """The Settings a workload reads from its env, secrets filled in as the Secret would."""
    environ = {e["name"]: e.get("value", "from-a-secret") for e in env}
    return Settings.from_env(environ)


def parse_bytes(quantity: str) -> int:
    """Kubernetes (Mi, Gi) or Spark (m, g) memory quantity, in bytes."""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|k|m|g)", quantity)
    assert match, f"unexpected memory quantity {quantity}"
    scale = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1024, "m": 1024**2, "g": 1024**3}
    return int(match[1]) * scale[match[2]]


def parse_cpu(quantity: str | int | float) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{d['kind']} {d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
    ]


def test_chart_settings_file_is_generated_from_the_settings_model() -> None:
    assert chartgen.is_current(), "run: python -m cryptolake.k8s settings"


@pytest.mark.parametrize("variant", VARIANTS)
def test_workloads_get_exactly_the_settings_the_code_reads(renderer: Renderer, variant: str) -> None:
    envs = workload_envs(renderer.chart("cryptolake", variant))
    assert len(envs) == 1 + 2 * len(LAYERS)
    expected = env_names(include_local=False)
    for container, env in envs.items():
        assert [e["name"] for e in env] == expected, container
        settings_of(env)  # every value parses as its setting's type


@pytest.mark.parametrize("variant", VARIANTS)
def test_secret_settings_come_from_the_lake_users_secret(renderer: Renderer, variant: str) -> None:
    minio = renderer.chart("minio", variant)
    for container, env in workload_envs(renderer.chart("cryptolake", variant)).items():
        for entry in env:
            if entry["name"] in secret_env_names():
                assert "value" not in entry, container
                ref = entry["valueFrom"]["secretKeyRef"]
                # Absent only where the code runs without it (a Kafka password, for a broker that asks for none).
                absent_ok = ref.get("optional") is True and getattr(Settings(), ref["key"]) == ""
                assert absent_ok or ref["key"] in one(minio, "Secret", ref["name"])["data"], container
            else:
                assert "valueFrom" not in entry, container


def test_chart_made_secret_holds_the_secret_settings(renderer: Renderer) -> None:
    keys = {name.removeprefix("CRYPTOLAKE_").lower() for name in secret_env_names()}
    sets = ("credentials.existingSecret=", *(f"credentials.values.{key}=x{key}" for key in keys))
    docs = renderer.template(REPO_ROOT / "charts" / "cryptolake", "cryptolake", sets=sets)
    (secret,) = by_kind(docs, "Secret")
    assert set(secret["stringData"]) == keys
    for env in workload_envs(docs).values():
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e}
        assert refs == {secret["metadata"]["name"]}


def test_settings_are_overridden_through_values(renderer: Renderer) -> None:
    sets = ("settings.max_offsets_per_trigger=1000000", "settings.symbols={BTC-USDT,SOL-USDT}")
    docs = renderer.template(REPO_ROOT / "charts" / "cryptolake", "cryptolake", sets=sets)
    for env in workload_envs(docs).values():
        settings = settings_of(env)
        assert settings.max_offsets_per_trigger == 1_000_000
        assert settings.symbols == ("BTC-USDT", "SOL-USDT")


def test_spark_conf_adds_to_what_the_jobs_set_and_never_contradicts_it(renderer: Renderer) -> None:
    from jobs.session import spark_conf  # pyspark: imported only by the tests that need it

    for app in by_kind(renderer.chart("cryptolake", "kind"), "SparkApplication"):
        code = spark_conf(settings_of(app["spec"]["driver"]["env"]))
        clash = {key for key in app["spec"].get("sparkConf", {}) if key in code}
        assert not clash, f"{app['metadata']['name']} sets {clash}, which jobs.session.spark_conf owns"
        assert not app["spec"].get("hadoopConf"), "S3A settings belong to jobs.session.spark_conf"


def test_spark_version_is_pysparks_everywhere(renderer: Renderer) -> None:
    version = pyspark_version()
    for app in by_kind(renderer.chart("cryptolake", "default"), "SparkApplication"):
        assert app["spec"]["sparkVersion"] == version
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert f"ARG SPARK_IMAGE=apache/spark:{version}-" in dockerfile


def test_chart_version_is_the_projects() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    chart = yaml.safe_load((REPO_ROOT / "charts" / "cryptolake" / "Chart.yaml").read_text())
    assert chart["appVersion"] == project["version"]


def test_each_layer_runs_its_job_file(renderer: Renderer) -> None:
    values = yaml.safe_load((REPO_ROOT / "charts" / "cryptolake" / "values.yaml").read_text())
    apps = by_kind(renderer.chart("cryptolake", "default"), "SparkApplication")
    assert sorted(a["metadata"]["name"] for a in apps) == sorted(f"cryptolake-{layer}" for layer in LAYERS)
    for app in apps:
        layer = app["metadata"]["name"].removeprefix("cryptolake-")
        assert app["spec"]["type"] == "Python"
        assert app["spec"]["mainApplicationFile"] == f"local://{values['spark']['projectDir']}/jobs/{layer}.py"
        assert (REPO_ROOT / "jobs" / f"{layer}.py").is_file()


def test_each_spark_pod_starts_its_jvm_with_the_jobs_logging_config(renderer: Renderer) -> None:
    # The jobs' own conf names the file too, but a pod's JVM is up before that conf is read.
    project = yaml.safe_load((REPO_ROOT / "charts" / "cryptolake" / "values.yaml").read_text())["spark"]["projectDir"]
    in_image = f"{project}/{LOG4J2_CONFIG.relative_to(REPO_ROOT)}"
    for app in by_kind(renderer.chart("cryptolake", "default"), "SparkApplication"):
        for role in ("driver", "executor"):
            assert app["spec"][role]["javaOptions"] == f"-Dlog4j2.configurationFile={in_image}"


def test_each_component_is_labelled_for_kubectl_logs(renderer: Renderer) -> None:
    docs = renderer.chart("cryptolake", "kind")
    for app in by_kind(docs, "SparkApplication"):
        layer = app["metadata"]["name"].removeprefix("cryptolake-")
        for role in ("driver", "executor"):
            assert app["spec"][role]["labels"]["app.kubernetes.io/component"] == layer
    ingestor = one(docs, "Deployment", "cryptolake-ingestor")
    assert ingestor["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "ingestor"


@pytest.mark.parametrize("variant", VARIANTS)
def test_ingestor_pod_leaves_room_for_its_queue_and_its_flush(renderer: Renderer, variant: str) -> None:
    pod = one(renderer.chart("cryptolake", variant), "Deployment", "cryptolake-ingestor")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    settings = settings_of(container["env"])
    assert pod["terminationGracePeriodSeconds"] > settings.ingestor_flush_seconds
    interpreter = 96 * 1024**2  # CPython with the ingestor's libraries loaded, beside the queue
    limit = parse_bytes(container["resources"]["limits"]["memory"])
    assert limit >= settings.ingestor_queue_mib * 1024**2 + interpreter


def test_streams_restart_with_retries_and_intervals(renderer: Renderer) -> None:
    for app in by_kind(renderer.chart("cryptolake", "kind"), "SparkApplication"):
        policy = app["spec"]["restartPolicy"]
        assert policy["type"] in ("Always", "OnFailure")
        assert policy["onFailureRetryInterval"] >= 5
        assert policy["onSubmissionFailureRetryInterval"] >= 5
        assert policy["onFailureRetries"] > 0
        assert policy["onSubmissionFailureRetries"] > 0


def test_drivers_use_the_service_account_the_operator_makes(renderer: Renderer) -> None:
    operator = renderer.operator()
    accounts = {
        d["metadata"]["name"] for d in by_kind(operator, "ServiceAccount") if d["metadata"]["namespace"] == namespace()
    }
    bound = {
        subject["name"]
        for binding in by_kind(operator, "RoleBinding")
        if binding["metadata"]["namespace"] == namespace()
        for subject in binding["subjects"]
    }
    for app in by_kind(renderer.chart("cryptolake", "kind"), "SparkApplication"):
        assert app["spec"]["driver"]["serviceAccount"] in accounts & bound


def test_operator_watches_our_namespace_with_its_webhook_on(renderer: Renderer) -> None:
    operator = renderer.operator()
    args = [
        arg
        for deployment in by_kind(operator, "Deployment")
        for container in deployment["spec"]["template"]["spec"]["containers"]
        for arg in container.get("args", [])
    ]
    assert f"--namespaces={namespace()}" in args
    assert by_kind(operator, "MutatingWebhookConfiguration")


def test_operator_controller_holds_a_spark_submit_jvm(renderer: Renderer) -> None:
    """Each submission forks spark-submit, a JVM, inside the controller's container: 1 GiB, all of it requested."""
    deployments = by_kind(renderer.operator(), "Deployment")
    (controller,) = [d for d in deployments if d["metadata"]["name"].endswith("controller")]
    (container,) = controller["spec"]["template"]["spec"]["containers"]
    resources = container["resources"]
    assert parse_bytes(resources["limits"]["memory"]) >= GIB
    assert resources["requests"]["memory"] == resources["limits"]["memory"]


def _effective(renderer: Renderer, variant: str) -> Settings:
    return settings_of(next(iter(workload_envs(renderer.chart("cryptolake", variant)).values())))


@pytest.mark.parametrize("variant", VARIANTS)
def test_kafka_and_s3_addresses_are_the_other_charts_services(renderer: Renderer, variant: str) -> None:
    settings = _effective(renderer, variant)
    host, port = settings.kafka_bootstrap.split(":")
    kafka = one(renderer.chart("redpanda", variant), "Service", host)
    assert int(port) in {p["port"] for p in kafka["spec"]["ports"]}
    match = re.fullmatch(r"http://([^:/]+):(\d+)", settings.s3_endpoint)
    assert match
    s3 = one(renderer.chart("minio", variant), "Service", match[1])
    assert int(match[2]) in {p["port"] for p in s3["spec"]["ports"]}


@pytest.mark.parametrize("variant", VARIANTS)
def test_topic_and_bucket_are_the_ones_the_code_uses(renderer: Renderer, variant: str) -> None:
    settings = _effective(renderer, variant)
    topics_job = by_kind(renderer.chart("redpanda", variant), "Job")[0]
    script = topics_job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert f'ensure_topic "{settings.kafka_topic}" ' in script
    setup = by_kind(renderer.chart("minio", variant), "Job")[0]
    env = {e["name"]: e.get("value") for e in setup["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BUCKET"] == settings.lake_bucket


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _admitted(policy: dict[str, Any], labels: dict[str, str], port: str) -> bool:
    for rule in policy["spec"]["ingress"]:
        if port not in {p["port"] for p in rule.get("ports", [])}:
            continue
        peers = rule.get("from")
        if peers is None or any("podSelector" in p and _selects(p["podSelector"], labels) for p in peers):
            return True
    return False


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_the_pipeline_reaches_kafka_and_s3(renderer: Renderer, variant: str) -> None:
    docs = renderer.chart("cryptolake", variant)
    clients = [one(docs, "Deployment", "cryptolake-ingestor")["spec"]["template"]["metadata"]["labels"]]
    for app in by_kind(docs, "SparkApplication"):
        clients += [app["spec"]["driver"]["labels"], app["spec"]["executor"]["labels"]]
    outsiders = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind(renderer.operator(), "Deployment")]
    for chart, port in (("redpanda", "kafka"), ("minio", "api")):
        (policy,) = by_kind(renderer.chart(chart, variant), "NetworkPolicy")
        assert all(_admitted(policy, labels, port) for labels in clients), chart
        assert not any(_admitted(policy, labels, port) for labels in outsiders), chart


def test_kind_port_mappings_reach_the_node_ports(renderer: Renderer) -> None:
    kind = yaml.safe_load((REPO_ROOT / "manifests" / "kind-cluster.yaml").read_text())
    mappings = {m["containerPort"]: m["hostPort"] for node in kind["nodes"] for m in node.get("extraPortMappings", [])}
    node_ports = {
        p["nodePort"]
        for doc in renderer.stack("kind")
        if doc["kind"] == "Service" and doc["spec"].get("type") == "NodePort"
        for p in doc["spec"]["ports"]
    }
    assert set(mappings) == node_ports
    redpanda = yaml.safe_load((REPO_ROOT / "charts" / "redpanda" / "values.yaml").read_text())["external"]
    assert mappings[redpanda["nodePort"]] == redpanda["advertisedPort"]


@dataclass
class Footprint:
    requested: int = 0  # bytes of memory the scheduler reserves
    limit: int = 0  # bytes of memory the pods may grow to
    cpu: float = 0.0  # CPUs requested


def footprint(docs: list[dict[str, Any]]) -> Footprint:
    """What the pods ask of the node; Spark pods as Spark sizes them (memory + overhead both requested and limit,
    coreRequest). Init containers finish before the others start: bounded, not added."""
    total = Footprint()
    for _, spec in pod_specs(docs):
        for container in spec.get("initContainers", []):
            assert "memory" in container["resources"]["limits"], container["name"]
        for container in spec["containers"]:
            resources = container["resources"]
            total.requested += parse_bytes(resources["requests"]["memory"])
            total.limit += parse_bytes(resources["limits"]["memory"])
            total.cpu += parse_cpu(resources["requests"]["cpu"])
    for app in by_kind(docs, "SparkApplication"):
        for role in ("driver", "executor"):
            shape = app["spec"][role]
            memory = shape.get("instances", 1) * (parse_bytes(shape["memory"]) + parse_bytes(shape["memoryOverhead"]))
            total.requested += memory
            total.limit += memory
            total.cpu += shape.get("instances", 1) * parse_cpu(shape["coreRequest"])
    return total


def documented_node() -> tuple[int, int]:
    """Memory (bytes) and CPUs of the kind node, as docs/kubernetes.md asks Docker for."""
    match = DOC_NODE.search(KIND_DOC.read_text())
    assert match, f"{KIND_DOC} no longer states the node size"
    return int(match[1]) * GIB, int(match[2])


def test_whole_stack_fits_the_documented_kind_node(renderer: Renderer) -> None:
    """Every pod at its limit still fits beside kube-system, and requests leave half the CPUs free."""
    memory, cpus = documented_node()
    stack = footprint(renderer.stack("kind"))
    assert stack.requested <= stack.limit
    assert stack.limit + SYSTEM_MEMORY <= memory, f"limits {stack.limit / GIB:.2f} GiB + system"
    assert stack.cpu <= cpus / 2, f"requests {stack.cpu:.2f} CPUs"


@pytest.mark.parametrize("variant", VARIANTS)
def test_spark_pods_leave_at_least_sparks_minimum_overhead(renderer: Renderer, variant: str) -> None:
    """The heap is not all of a JVM: metaspace, threads, Netty, the AWS SDK and, on the driver, Python live in the
    overhead, and the pod's limit is memory + overhead."""
    for app in by_kind(renderer.chart("cryptolake", variant), "SparkApplication"):
        for role in ("driver", "executor"):
            shape = app["spec"][role]
            heap = parse_bytes(shape["memory"])
            limit = heap + parse_bytes(shape["memoryOverhead"])  # the pod's limit, as Spark sets it
            assert limit >= heap + SPARK_MIN_OVERHEAD, f"{app['metadata']['name']} {role}: {shape['memoryOverhead']}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_spark_pods_write_only_to_their_emptydirs(renderer: Renderer, variant: str) -> None:
    """Spark 4 writes artifacts/ in the working directory at the first query: on a read-only root filesystem, /tmp
    and the image's working directory must be writable volumes of every driver and executor."""
    workdir = re.findall(r"^WORKDIR (\S+)$", (REPO_ROOT / "Dockerfile").read_text(), re.MULTILINE)[-1]
    for app in by_kind(renderer.chart("cryptolake", variant), "SparkApplication"):
        volumes = {v["name"]: v for v in app["spec"]["volumes"]}
        for role in ("driver", "executor"):
            shape = app["spec"][role]
            name = f"{app['metadata']['name']} {role}"
            assert shape["securityContext"]["readOnlyRootFilesystem"] is True, name
            mounts = {m["mountPath"]: m for m in shape["volumeMounts"]}
            for path in ("/tmp", workdir):
                assert path in mounts, f"{name}: nothing writable at {path}"
                assert not mounts[path].get("readOnly"), f"{name}: {path}"
                assert "emptyDir" in volumes[mounts[path]["name"]], f"{name}: {path}"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("chart", CHARTS)
def test_pods_run_as_non_root_on_a_read_only_root_filesystem(renderer: Renderer, chart: str, variant: str) -> None:
    docs = renderer.chart(chart, variant)
    shapes = [
        (name, spec["securityContext"], spec.get("initContainers", []) + spec["containers"])
        for name, spec in pod_specs(docs)
    ]
    for app in by_kind(docs, "SparkApplication"):
        for role in ("driver", "executor"):
            shape = app["spec"][role]
            shapes.append((f"{app['metadata']['name']} {role}", shape["podSecurityContext"], [shape]))
    for name, pod_context, containers in shapes:
        assert pod_context["runAsNonRoot"] is True, name
        assert pod_context["runAsUser"] > 0, name
        for container in containers:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name


@pytest.mark.parametrize("chart", CHARTS)
def test_no_secret_in_a_config_map_or_a_plain_env_value(renderer: Renderer, chart: str) -> None:
    docs = renderer.chart(chart, "kind")
    for config_map in by_kind(docs, "ConfigMap"):
        text = yaml.safe_dump(config_map["data"])
        assert not re.search(r"(?i)(secret|password)[^\n]*:", text), config_map["metadata"]["name"]
    for _, spec in pod_specs(docs):
        for container in spec["containers"]:
            for entry in container.get("env", []):
                if re.search(r"(?i)secret|password|access_key", entry["name"]):
                    assert "valueFrom" in entry, f"{container['name']} {entry['name']}"


def test_pods_carry_prometheus_scrape_annotations(renderer: Renderer) -> None:
    annotated = []
    for chart in CHARTS:
        docs = renderer.chart(chart, "kind")
        annotated += [
            d["spec"]["template"]["metadata"].get("annotations", {})
            for d in docs
            if d["kind"] in ("Deployment", "StatefulSet") and "console" not in d["metadata"]["name"]
        ]
        annotated += [a["spec"]["driver"]["annotations"] for a in by_kind(docs, "SparkApplication")]
    assert len(annotated) == len(CHARTS) + len(LAYERS)
    for pod in annotated:
        assert pod["prometheus.io/scrape"] == "true"
        assert int(pod["prometheus.io/port"]) > 0
        assert pod["prometheus.io/path"].startswith("/")


def image_references(docs: list[dict[str, Any]]) -> list[str]:
    images = [app["spec"]["image"] for app in by_kind(docs, "SparkApplication")]
    for _, spec in pod_specs(docs):
        images += [c["image"] for c in spec.get("initContainers", []) + spec["containers"]]
    return images


def registry_and_path(image: str) -> tuple[str, str]:
    """Registry host and repository path of an image reference, Docker's defaults filled in (`minio/mc` is
    docker.io/minio/mc, `busybox` docker.io/library/busybox)."""
    name = image.split("@")[0]
    first, _, rest = name.partition("/")
    registry, path = (first, rest) if rest and ("." in first or ":" in first or first == "localhost") else ("", name)
    if ":" in path.rsplit("/", 1)[-1]:
        path = path.rsplit(":", 1)[0]  # the tag
    if not registry:
        return "docker.io", path if "/" in path else f"library/{path}"
    return registry, path


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_image_comes_from_minios_deleted_docker_hub_repositories(renderer: Renderer, variant: str) -> None:
    """MinIO took its images off Docker Hub: a pod pulling docker.io/minio/* ends in ImagePullBackOff."""
    images = image_references(renderer.stack(variant))
    assert any(registry_and_path(image) == ("quay.io", "minio/mc") for image in images)
    for image in images:
        registry, path = registry_and_path(image)
        assert not (registry == "docker.io" and path.startswith("minio/")), image


def test_image_references_are_read_as_docker_reads_them() -> None:
    assert registry_and_path("minio/mc:RELEASE.1") == ("docker.io", "minio/mc")
    assert registry_and_path("docker.io/minio/minio@sha256:ab") == ("docker.io", "minio/minio")
    assert registry_and_path("quay.io/minio/mc:RELEASE.1@sha256:ab") == ("quay.io", "minio/mc")
    assert registry_and_path("localhost:5000/x:1") == ("localhost:5000", "x")
    assert registry_and_path("busybox") == ("docker.io", "library/busybox")


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_the_topic_job_creates_topics(renderer: Renderer, variant: str) -> None:
    """An auto-created topic gets one partition; the topic Job turns auto-creation off (dev-container mode turns it
    on) before it creates the topics with theirs."""
    (job,) = by_kind(renderer.chart("redpanda", variant), "Job")
    lines = [line.strip() for line in job["spec"]["template"]["spec"]["containers"][0]["args"][0].splitlines()]
    off = lines.index("rpk cluster config set auto_create_topics_enabled false")
    assert off < min(i for i, line in enumerate(lines) if line.startswith("ensure_topic "))
