# The Spark image of the bronze, silver and gold SparkApplications: the official Apache Spark image of pyspark's
# version, the jars pinned in spark-jars.txt on Spark's classpath, the jobs' dependency group from uv.lock, and the
# two packages the jobs run: core and jobs.
ARG SPARK_IMAGE=apache/spark:4.1.1-scala2.13-java21-python3-ubuntu

FROM ${SPARK_IMAGE} AS build
USER root
ARG UV_VERSION=0.13.8
# The image's python3 is Ubuntu's 3.10; the project needs 3.11, so uv downloads a managed CPython. Offline, build
# on a base that has a 3.11 (--build-arg SPARK_IMAGE=...) and name it: --build-arg PYTHON=/usr/bin/python3.11.
ARG PYTHON_VERSION=3.11.18
ARG PYTHON=
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_PROJECT_ENVIRONMENT=/opt/cryptolake/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
RUN python3 -m pip install --no-cache-dir "uv==${UV_VERSION}"

# The jars come from the list and the stdlib-only fetcher that local setup uses, each checked against its sha256.
COPY spark-jars.txt core/jars.py /tmp/jars/
RUN python3 /tmp/jars/jars.py --list /tmp/jars/spark-jars.txt --dest /opt/cryptolake-jars

# The final stage copies /opt/python either way: empty when the base's interpreter is used.
RUN if [ -n "${PYTHON}" ]; then mkdir -p /opt/python; else uv python install "${PYTHON_VERSION}"; fi
WORKDIR /opt/cryptolake
# pyspark stays out of the venv: spark-submit puts the image's own pyspark (the same version) on PYTHONPATH, and the
# wheel would add a second copy of every Spark jar.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-default-groups --group jobs --no-install-project --no-install-package pyspark --python "${PYTHON:-${PYTHON_VERSION}}"
COPY core ./core
COPY jobs ./jobs

FROM ${SPARK_IMAGE}
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/cryptolake-jars/ /opt/spark/jars/
# The SparkApplications run local:///opt/cryptolake/jobs/<layer>.py with the venv's interpreter.
COPY --from=build /opt/cryptolake /opt/cryptolake
# The packages run from their folder, not installed: the image holds no other part of the project.
ENV PYSPARK_PYTHON=/opt/cryptolake/.venv/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/cryptolake/.venv/bin/python \
    PYTHONPATH=/opt/cryptolake \
    PYTHONDONTWRITEBYTECODE=1
# The base's working directory, stated here because the chart mounts a writable emptyDir on it (spark.workDir).
WORKDIR /opt/spark/work-dir
USER 185:185
