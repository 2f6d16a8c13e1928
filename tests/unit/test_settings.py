import pytest

from cryptolake.settings import Settings, SettingsError, env_names, secret_env_names


def test_defaults_without_environment() -> None:
    assert Settings.from_env({}) == Settings()


def test_reads_each_type_from_its_env_var() -> None:
    settings = Settings.from_env(
        {
            "CRYPTOLAKE_KAFKA_TOPIC": "t",
            "CRYPTOLAKE_SHUFFLE_PARTITIONS": "8",
            "CRYPTOLAKE_SYMBOLS": "BTC-USDT, SOL-USDT ,",
        }
    )
    assert settings.kafka_topic == "t"
    assert settings.shuffle_partitions == 8
    assert settings.symbols == ("BTC-USDT", "SOL-USDT")


def test_env_round_trip() -> None:
    settings = Settings(kafka_bootstrap="kafka:9092", symbols=("A-B",), max_offsets_per_trigger=7)
    assert Settings.from_env(settings.to_env()) == settings
    assert list(settings.to_env()) == env_names()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CRYPTOLAKE_SHUFFLE_PARTITIONS", "many", "whole number"),
        ("CRYPTOLAKE_SYMBOLS", " , ", "at least one"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}.*{message}"):
        Settings.from_env({name: value})


def test_redacted_masks_exactly_the_secrets() -> None:
    redacted = Settings().redacted()
    assert {k for k, v in redacted.items() if v == "***"} == set(secret_env_names())
    assert "cryptolake-secret" not in redacted.values()


def test_lake_paths_share_the_bucket() -> None:
    settings = Settings(lake_bucket="b")
    assert settings.table_uri("silver/trades") == "s3a://b/silver/trades"
    assert settings.checkpoint_uri("silver") == "s3a://b/_checkpoints/silver"
