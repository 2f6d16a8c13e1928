"""The Kafka clients' connection settings, in librdkafka's and the Java client's spellings."""

from __future__ import annotations

import pytest

from core.kafka import java_config, librdkafka_config
from core.settings import Settings, SettingsError


def test_a_plaintext_broker_needs_its_address_alone() -> None:
    settings = Settings(kafka_bootstrap="b1:9092,b2:9092")
    expected = {"bootstrap.servers": "b1:9092,b2:9092", "security.protocol": "PLAINTEXT"}
    assert librdkafka_config(settings) == expected
    assert java_config(settings) == expected


def test_a_sasl_user_in_each_spelling_with_its_password_quoted_for_jaas() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="lake",
        kafka_sasl_password='a"b\\c',
        kafka_ca_file="/etc/kafka/ca.pem",
    )
    assert librdkafka_config(settings) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "lake",
        "sasl.password": 'a"b\\c',
        "ssl.ca.location": "/etc/kafka/ca.pem",
    }
    java = java_config(settings)
    assert java["sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="lake" password="a\\"b\\\\c";'
    )
    assert (java["ssl.truststore.type"], java["ssl.truststore.location"]) == ("PEM", "/etc/kafka/ca.pem")


def test_plain_logs_in_with_its_own_module_and_tls_alone_takes_no_user() -> None:
    plain = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    )
    assert java_config(plain)["sasl.jaas.config"].startswith("org.apache.kafka.common.security.plain.PlainLoginModule ")
    tls = Settings(kafka_security_protocol="SSL", kafka_sasl_username="ignored", kafka_sasl_password="ignored")
    assert "sasl.username" not in librdkafka_config(tls)
    assert "ssl.ca.location" not in librdkafka_config(tls)  # the system's CAs


@pytest.mark.parametrize("user", [{}, {"kafka_sasl_username": "u"}, {"kafka_sasl_password": "p"}])
def test_a_sasl_protocol_without_a_whole_user_is_a_bad_setting(user: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="CRYPTOLAKE_KAFKA_SASL_PASSWORD: must be set"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT", **user)


def test_an_unknown_protocol_is_refused_naming_the_choices() -> None:
    with pytest.raises(SettingsError, match="CRYPTOLAKE_KAFKA_SECURITY_PROTOCOL: must be PLAINTEXT, SSL"):
        Settings.from_env({"CRYPTOLAKE_KAFKA_SECURITY_PROTOCOL": "TLS"})
