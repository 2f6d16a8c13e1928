"""How every Kafka client of the project reaches the brokers: their addresses and, towards a broker that asks for
them, TLS and a SASL user. Two spellings of the same settings: librdkafka's (confluent-kafka: the ingestor and the
CLI) and the Java client's (Spark's Kafka source, which takes them prefixed with ``kafka.``)."""

from __future__ import annotations

from core.settings import Settings

# The Java client's login module per SASL mechanism.
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def _sasl(settings: Settings) -> bool:
    # The settings refuse a SASL protocol without its user.
    return settings.kafka_security_protocol.startswith("SASL_")


def _tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def librdkafka_config(settings: Settings) -> dict[str, str]:
    """confluent-kafka's connection settings of a producer, consumer or admin client."""
    config = {"bootstrap.servers": settings.kafka_bootstrap, "security.protocol": settings.kafka_security_protocol}
    if _sasl(settings):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = settings.kafka_sasl_password
    if _tls(settings) and settings.kafka_ca_file:
        config["ssl.ca.location"] = settings.kafka_ca_file
    return config


def java_config(settings: Settings) -> dict[str, str]:
    """The Java client's connection settings (Spark's Kafka source takes each as ``kafka.<key>``)."""
    config = {"bootstrap.servers": settings.kafka_bootstrap, "security.protocol": settings.kafka_security_protocol}
    if _sasl(settings):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.jaas.config"] = (
            f"{_LOGIN_MODULES[settings.kafka_sasl_mechanism]} required "
            f"username={java_quoted(settings.kafka_sasl_username)} "
            f"password={java_quoted(settings.kafka_sasl_password)};"
        )
    if _tls(settings) and settings.kafka_ca_file:
        config["ssl.truststore.type"] = "PEM"
        config["ssl.truststore.location"] = settings.kafka_ca_file
    return config


def java_quoted(value: str) -> str:
    """``value`` in double quotes, its backslashes and quotes escaped: as JAAS options and java's @-files read it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
