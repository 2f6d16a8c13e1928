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

from cryptolake.k8s import chartgen
from cryptolake.k8s.render import CHARTS, VARIANTS, Renderer, by_kind, namespace, one, pyspark_version
from cryptolake.local.paths import REPO_ROOT
from cryptolake.settings import Settings, env_names, secret_env_names

LAYERS = ("bronze", "silver", "gold")
GIB = 1024**3
# What kube-system and kind's own pods take on the node, beside the stack.
SYSTEM_MEMORY = 768 * 1024**2
NODE_MEMORY = 6 * GIB


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
                assert ref["key"] in one(minio, "Secret", ref["name"])["data"], container
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
    """What the pods ask of the node; Spark pods as the operator sizes them (memory + overhead both requested and
    limit, coreRequest). Init containers finish before the others start: bounded, not added."""
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


def test_whole_stack_fits_a_6_gib_kind_node(renderer: Renderer) -> None:
    """Requests fit beside kube-system, limits fit the node, and 2 CPUs of requests leave room on a 4-CPU node."""
    stack = footprint(renderer.stack("kind"))
    assert stack.requested + SYSTEM_MEMORY <= NODE_MEMORY, f"requests {stack.requested / GIB:.2f} GiB"
    assert stack.limit <= NODE_MEMORY, f"limits {stack.limit / GIB:.2f} GiB"
    assert stack.cpu <= 2.0, f"requests {stack.cpu:.2f} CPUs"


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
