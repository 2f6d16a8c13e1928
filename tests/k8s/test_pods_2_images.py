"""Tier 2, step 2: the images, stand-ins for the official ones and the project's own built on them, unchanged, then
loaded into the node (see test_pods_1_node.py for the steps)."""

from __future__ import annotations

import pyspark
import pytest

from core.jars import read_pins
from tests.k8s import images
from tests.k8s.conftest import SPARK_BASE, needs_root

pytestmark = needs_root


def in_image(docker: images.Docker, image: str, *command: str) -> str:
    """Output of a command in a throwaway container of the image, as its own user, with no network and a read-only
    root."""
    # Its own name resolves (to loopback), as Spark needs of a host.
    flags = ["--rm", "--network=none", "--hostname=image-check", "--add-host=image-check:127.0.0.1"]
    flags += ["--read-only", "--tmpfs=/tmp"]
    return docker("run", *flags, "--entrypoint=", image, *command)


@pytest.mark.parametrize("name", ["spark", "python"])
def test_standins_say_what_they_stand_in_for(name: str) -> None:
    dockerfile = (images.STANDINS / name / "Dockerfile").read_text()
    assert dockerfile.startswith("# STAND-IN for the official"), name


def test_spark_standin_has_a_jre_python_3_11_and_the_pinned_pyspark(
    docker: images.Docker, standins: dict[str, str]
) -> None:
    assert standins["spark"] == SPARK_BASE
    script = "import sys, pyspark; print(sys.version_info[:2], pyspark.__version__)"
    assert in_image(docker, SPARK_BASE, "python3", "-c", script).split() == ["(3,", "11)", pyspark.__version__]
    # As the image's Spark user: spark-submit finds Spark's jars and the JRE.
    assert f"version {pyspark.__version__}" in in_image(docker, SPARK_BASE, "sh", "-c", "spark-submit --version 2>&1")


def test_project_images_build_unchanged_on_the_standins(docker: images.Docker, project_images: dict[str, str]) -> None:
    """Each image imports what it runs with its own interpreter, as its own user, on a read-only root, and holds
    none of the app's package."""
    spark, ingestor = project_images["spark"], project_images["ingestor"]
    for image, python, runs in (
        # pyspark is Spark's own (/opt/spark/python, put on the path by spark-submit): the query pod runs the jobs.
        (spark, "/opt/cryptolake/.venv/bin/python", "core.settings, jobs"),
        (ingestor, "python", "ingestion.app"),
    ):
        check = f"import importlib.util as u, sys, {runs}; print(sys.version_info[:2], u.find_spec('cryptolake'))"
        assert in_image(docker, image, python, "-c", check).split() == ["(3,", "11)", "None"], image
    # The Spark jars of spark-jars.txt sit on Spark's classpath.
    jars = in_image(docker, spark, "ls", "/opt/spark/jars").split()
    assert {jar.filename for jar in read_pins()} <= set(jars)


def test_every_image_the_pods_run_is_loaded_into_the_node(
    loaded: set[str], standins: dict[str, str], project_images: dict[str, str]
) -> None:
    assert {standins["python"], *project_images.values()} <= loaded
