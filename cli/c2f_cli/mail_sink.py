"""The SMTP sink `c2f up` runs when no SMTP server is named: aiosmtpd, keeping every mail it
accepts as a file in a Maildir ($C2F_HOME/mail/new; `c2f mail` and `mail.read_mail` read it).

aiosmtpd's own Maildir handler (`aiosmtpd.handlers.Mailbox`) writes and fsyncs each file on
the event loop. While the disk syncs (milliseconds, more while a database writes to the same
disk) every other connection waits: under `bench/notifications.py` the sink spent 40 % of its
time in fsync with every SMTP session stalled behind it, so eight senders got about one mail
through at a time. This handler stores each mail in a worker thread, so the sessions go on
meanwhile, and answers 250 only once the mail is on disk, as a mail server does. The file
holds the mail as received, after the headers aiosmtpd's handler adds (X-Peer, X-MailFrom,
X-RcptTo); each gets a name of its own, so stores run side by side.

Run as: python -m aiosmtpd -n -l HOST:PORT -c c2f_cli.mail_sink.Maildir DIRECTORY
"""

import asyncio
import os
import socket
import time
import uuid
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import Envelope, Session


class Maildir:
    """An aiosmtpd handler storing each mail in the Maildir at `directory`."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        for sub in ("tmp", "new", "cur"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self._host = socket.gethostname().replace("/", "_").replace(":", "_")

    @classmethod
    def from_cli(cls, parser: ArgumentParser, *args: str) -> "Maildir":
        if len(args) != 1:
            parser.error("name the Maildir directory (one argument)")
        return cls(args[0])

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        head = (
            f"X-Peer: {session.peer}\r\n"
            f"X-MailFrom: {envelope.mail_from}\r\n"
            f"X-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        await asyncio.to_thread(self.store, head + content)
        return "250 OK"

    def store(self, mail: bytes) -> Path:
        """Write `mail` under tmp/, sync it to disk, then move it into new/ (the Maildir way: a
        reader never sees half a mail)."""
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.{self._host}"
        tmp = self.directory / "tmp" / name
        with tmp.open("xb") as file:
            file.write(mail)
            file.flush()
            os.fsync(file.fileno())
        final = self.directory / "new" / name
        os.rename(tmp, final)
        return final
