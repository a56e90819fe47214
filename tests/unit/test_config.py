"""Where the local stack listens, from the environment."""

import pytest

from c2f_cli.config import StackConfig
from c2f_notifications.config import Settings as NotificationSettings


def test_defaults_are_the_embedded_stack(tmp_path) -> None:
    config = StackConfig.from_env({"C2F_HOME": str(tmp_path)})
    assert config.kafka_bootstrap == "127.0.0.1:19092"
    # Each service its own database server, from C2F_MONGO_PORT on.
    uris = [config.mongo_uri_of(name) for name in ("registration", "matching", "notifications", "reporting")]
    assert [uri.split("/?")[0] for uri in uris] == [
        f"mongodb://127.0.0.1:{p}" for p in (27217, 27218, 27219, 27220)
    ]
    assert all("retryWrites=false" in uri for uri in uris)
    assert config.mongo_uri_for_database("c2f_notifications") == uris[2]
    assert config.mongo_uri_for_database("scratch_1234") == config.scratch_mongo_uri == uris[0]
    assert config.service_url("reporting") == "http://127.0.0.1:8004"
    assert config.maildir == tmp_path / "mail"
    assert (config.external_kafka, config.external_mongo, config.external_smtp) == (None, None, None)


def test_given_servers_and_ports_are_used() -> None:
    config = StackConfig.from_env(
        {
            "C2F_KAFKA_BOOTSTRAP": "kafka-1:9092,kafka-2:9092",
            "C2F_MONGO_URI": "mongodb://db:27017/?replicaSet=rs0",
            "C2F_SMTP_HOST": "relay.example",
            "C2F_SMTP_PORT": "587",
            "C2F_MATCHING_PORT": "9002",
        }
    )
    assert config.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"
    for name in ("registration", "matching", "notifications", "reporting"):
        assert config.mongo_uri_of(name) == "mongodb://db:27017/?replicaSet=rs0"  # all share the one given
    assert config.mongo_uri_for_database("c2f_matching") == "mongodb://db:27017/?replicaSet=rs0"
    assert (config.smtp_host, config.smtp_port) == ("relay.example", 587)
    assert config.service_url("matching") == "http://127.0.0.1:9002"


def test_a_bad_port_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="C2F_MONGO_PORT must be a port number, not 'abc'"):
        StackConfig.from_env({"C2F_MONGO_PORT": "abc"})


def test_service_settings_prefer_their_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2F_SMTP_HOST", "shared-relay")
    monkeypatch.setenv("C2F_NOTIFICATIONS_SMTP_HOST", "own-relay")
    monkeypatch.setenv("C2F_SMTP_USERNAME", "")
    monkeypatch.setenv("C2F_NOTIFICATIONS_MONGO_DB", "notif_test")
    settings = NotificationSettings()
    assert settings.smtp_host == "own-relay"
    assert settings.smtp_username is None
    assert settings.mongo_db == "notif_test"
    assert settings.consumer_group == "c2f-notifications"


def test_a_registration_instance_for_some_clusters_gets_its_own_database_and_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from c2f_registration.config import Settings as RegistrationSettings

    monkeypatch.setenv("C2F_REGISTRATION_CLUSTERS", "DTI, Lombard")
    settings = RegistrationSettings()
    assert settings.served() == {"dti", "lombard"}
    assert (settings.mongo_db, settings.consumer_group) == (
        "c2f_registration_dti_lombard",
        "c2f-registration-dti-lombard",
    )
    monkeypatch.setenv("C2F_REGISTRATION_MONGO_DB", "chosen")
    assert RegistrationSettings().mongo_db == "chosen"
    monkeypatch.delenv("C2F_REGISTRATION_CLUSTERS")
    assert RegistrationSettings().consumer_group == "c2f-registration"
