"""Reading what the local SMTP sink received (a Maildir under $C2F_HOME/mail)."""

from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path


def read_mail(maildir: Path) -> list[EmailMessage]:
    """Every message the SMTP sink stored, oldest first."""
    files = sorted(
        (p for sub in ("new", "cur") if (maildir / sub).is_dir() for p in (maildir / sub).iterdir()),
        key=lambda p: p.stat().st_mtime_ns,
    )
    messages = []
    for path in files:
        with path.open("rb") as fh:
            message = BytesParser(policy=default).parse(fh)
        if isinstance(message, EmailMessage):
            messages.append(message)
    return messages
