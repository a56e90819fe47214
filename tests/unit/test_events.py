"""The envelope and event models: what every service relies on when reading the wire."""

import json

import pydantic
import pytest

from c2f_shared import topics
from c2f_shared.envelope import Envelope, UnknownEventType
from c2f_shared.events import EVENT_TYPES, Attendee, ClusterRegistered, ParticipantRegistered

CLUSTER = ClusterRegistered(
    cluster_id="c1",
    name="Cluster for Digital Transformation and Innovation",
    short_name="DTI",
    country="BG",
    sectors=["ict"],
    membership="founding",
)


def test_envelope_round_trips_through_json() -> None:
    envelope = Envelope.wrap(CLUSTER, producer="registration", correlation_id="req-1")
    again = Envelope.model_validate_json(envelope.model_dump_json())
    assert again == envelope
    assert again.open() == CLUSTER
    assert (again.type, again.schema_version, again.key) == ("ClusterRegistered", 1, "c1")
    assert (again.producer, again.correlation_id) == ("registration", "req-1")


def test_each_wrap_gets_a_new_event_id_unless_one_is_given() -> None:
    first = Envelope.wrap(CLUSTER, producer="p", correlation_id="c")
    second = Envelope.wrap(CLUSTER, producer="p", correlation_id="c")
    fixed = Envelope.wrap(CLUSTER, producer="p", correlation_id="c", event_id="e-42")
    assert first.event_id != second.event_id
    assert fixed.event_id == "e-42"


def test_unknown_fields_are_tolerated() -> None:
    envelope = Envelope.wrap(CLUSTER, producer="p", correlation_id="c")
    raw = json.loads(envelope.model_dump_json())
    raw["added_later"] = True
    raw["data"]["new_field_from_a_newer_producer"] = "x"
    assert Envelope.model_validate(raw).open() == CLUSTER


def test_events_are_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        CLUSTER.name = "changed"  # type: ignore[misc]


def test_unknown_event_type_is_reported() -> None:
    envelope = Envelope.wrap(CLUSTER, producer="p", correlation_id="c").model_copy(update={"type": "Nope"})
    with pytest.raises(UnknownEventType):
        envelope.open()


def test_missing_field_is_a_validation_error() -> None:
    envelope = Envelope.wrap(CLUSTER, producer="p", correlation_id="c")
    broken = envelope.model_copy(update={"data": {"cluster_id": "c1"}})
    with pytest.raises(pydantic.ValidationError):
        broken.open()


def test_every_event_type_has_a_known_topic_and_is_keyed_by_its_aggregate() -> None:
    assert all(model.TOPIC in topics.ALL for model in EVENT_TYPES.values())
    participant = ParticipantRegistered(
        participant_id="p1",
        event_id="e1",
        company_id="co1",
        cluster_id="c1",
        attendee=Attendee(name="Ана", email="ana@example.org", language="bg"),
        consent_share_contact=False,
    )
    assert Envelope.wrap(participant, producer="p", correlation_id="c").key == "p1"


def test_a_signed_link_says_what_it_allows_and_refuses_tampering() -> None:
    from c2f_shared import links

    token = links.sign("s3cret", "accept", "mt-1", "p-1")
    assert links.verify("s3cret", token) == links.Link(
        "accept", "mt-1", "p-1", links.verify("s3cret", token).expires
    )
    _, _, mac = token.partition(".")
    forged = links.sign("other", "decline", "mt-1", "p-1").split(".")[0] + "." + mac
    for bad in (forged, token[:-2] + "xx", "nonsense", links.sign("other", "accept", "mt-1", "p-1")):
        try:
            links.verify("s3cret", bad)
        except links.BadLink:
            continue
        raise AssertionError(f"accepted {bad}")
    expired = links.sign("s3cret", "accept", "mt-1", "p-1", valid_days=-1)
    try:
        links.verify("s3cret", expired)
    except links.BadLink as error:
        assert "expired" in str(error)
    else:
        raise AssertionError("accepted an expired link")
