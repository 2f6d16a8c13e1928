#!/bin/sh
# STAND-IN for the official Spark image's entrypoint: runs the two commands Spark on Kubernetes gives its pods, a
# driver (spark-submit in client mode inside the pod) or an executor (the executor backend, told its driver by the
# environment Spark sets); anything else runs as given.
set -eu
role=${1:-}
case "$role" in
driver)
    shift
    exec /usr/bin/tini -s -- spark-submit --deploy-mode client \
        --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS}" "$@"
    ;;
executor)
    shift
    # SPARK_JAVA_OPT_<n> are the executor's Java options, one a variable.
    java_opts=$(env | sed -n 's/^SPARK_JAVA_OPT_[0-9]*=//p' | tr '\n' ' ')
    # shellcheck disable=SC2086 # the options split on spaces, as Spark passes them
    exec /usr/bin/tini -s -- java $java_opts -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
        -cp "${SPARK_CLASSPATH:-}:${SPARK_HOME}/jars/*" \
        org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
        --driver-url "${SPARK_DRIVER_URL}" --executor-id "${SPARK_EXECUTOR_ID}" --cores "${SPARK_EXECUTOR_CORES}" \
        --app-id "${SPARK_APPLICATION_ID}" --hostname "${SPARK_EXECUTOR_POD_IP}" \
        --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID}" --podName "${SPARK_EXECUTOR_POD_NAME}"
    ;;
*)
    exec "$@"
    ;;
esac
