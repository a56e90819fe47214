"""How a mail shows the people it mentions, from the facts read for a batch of mails: names
and countries always, an attendee's name and e-mail and a company's contacts only as agreed."""

from c2f_notifications.delivery import _Facts
from c2f_notifications.messages import Party


def facts() -> _Facts:
    return _Facts(
        people={
            "p-shares": {
                "_id": "p-shares",
                "name": "Ana Petrova",
                "email": "ana@example.bg",
                "company_id": "c1",
                "consent_share_contact": True,
            },
            "p-private": {
                "_id": "p-private",
                "name": "Marco Bianchi",
                "email": "marco@example.it",
                "company_id": "c2",
                "consent_share_contact": False,
            },
            "p-cluster": {"_id": "p-cluster", "name": "Eleni", "email": "e@example.gr", "cluster_id": "k1"},
        },
        events={},
        companies={
            "c1": {"_id": "c1", "name": "Sofia Sensors", "country": "BG", "contacts": []},
            "c2": {
                "_id": "c2",
                "name": "Torino Mobility",
                "country": "IT",
                "contacts": [{"name": "Sales", "email": "sales@example.it"}],
            },
        },
        clusters={"k1": {"_id": "k1", "name": "Hellenic ICT Cluster", "country": "GR"}},
    )


def test_an_attendee_who_agreed_is_shown_with_name_and_e_mail() -> None:
    assert facts().party("p-shares") == Party(
        name="Sofia Sensors", country="BG", attendee="Ana Petrova", email="ana@example.bg"
    )


def test_an_attendee_who_did_not_agree_is_shown_by_company_only_with_its_agreed_contacts() -> None:
    party = facts().party("p-private")
    assert party == Party(name="Torino Mobility", country="IT", contacts=[("Sales", "sales@example.it")])
    assert party.reachable() == [("Sales", "sales@example.it")]


def test_a_cluster_member_is_shown_by_its_cluster_and_an_unknown_one_by_a_dash() -> None:
    assert facts().party("p-cluster") == Party(name="Hellenic ICT Cluster", country="GR")
    assert facts().party("nobody") == Party(name="—")
