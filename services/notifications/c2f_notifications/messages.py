"""What a person reads: the e-mail for a match suggestion, worded for its recipient.

English only for now; issue 6 brings templates in the partnership's languages.
"""

from email.message import EmailMessage
from typing import Any


def match_suggestion(
    me: dict[str, Any], other: dict[str, Any] | None, suggestion: dict[str, Any], recipient_id: str
) -> tuple[str, str]:
    """Subject and plain-text body telling `me` whom to meet and why."""
    parties = suggestion["parties"]
    mine = next(p for p in parties if p["participant_id"] == recipient_id)
    theirs = next(p for p in parties if p["participant_id"] != recipient_id)
    lines = [f"Dear {me['name']},", ""]
    lines.append(
        f"At {suggestion['event_name']} we suggest that {mine['company_name']} meets "
        f"{theirs['company_name']} ({theirs['country']})."
    )
    lines += ["", "Why:"]
    for reason in suggestion["reasons"]:
        if reason["offered_by"] == recipient_id:
            lines.append(
                f"  - you offer “{reason['offer_title']}”, which fits their need “{reason['need_title']}”"
            )
        else:
            lines.append(
                f"  - they offer “{reason['offer_title']}”, which fits your need “{reason['need_title']}”"
            )
    for signal in suggestion.get("signals", []):
        if signal["kind"] == "shared_markets":
            lines.append(f"  - you both target {', '.join(signal['markets'])}")
        elif signal["kind"] == "market_access" and signal["for"] == recipient_id:
            lines.append(f"  - they already work in {', '.join(signal['markets'])}, which you target")
        elif signal["kind"] == "connects_countries":
            lines.append(f"  - it connects {' and '.join(signal['countries'])}")
    lines.append("")
    if other is not None and other.get("consent_share_contact"):
        lines.append(f"Contact: {other['name']} <{other['email']}>")
    else:
        lines.append("Their contact details are not shared; ask for a meeting through the event's agenda.")
    lines += ["", "— C2Future Match, the European Strategic Cluster Partnership for smart cities"]
    subject = f"Meet {theirs['company_name']} at {suggestion['event_name']}"
    return subject, "\n".join(lines)


def build_email(
    *, sender: str, to_name: str, to_email: str, subject: str, body: str, message_id: str
) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = f"{to_name} <{to_email}>"
    email["Subject"] = subject
    # A stable Message-ID lets a mail system recognise a resend of the same message.
    email["Message-ID"] = f"<{message_id}@c2future-match>"
    email.set_content(body)
    return email
