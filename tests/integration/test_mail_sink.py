"""The local SMTP sink (`c2f_cli.mail_sink`, what `c2f up` runs) on a real aiosmtpd server:
every mail arrives once, readable as sent, and a mail being written to disk holds up no
other SMTP session."""

import asyncio
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from c2f_cli.mail import read_mail
from c2f_cli.mail_sink import Maildir
from c2f_cli.processes import free_port
from tests.support import smtp_server

pytestmark = pytest.mark.asyncio(loop_scope="session")


def mail(n: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "C2Future Match <match@c2future.example>"
    message["To"] = f"Ζωή {n} <zoe{n}@example.org>"
    message["Subject"] = f"Ραντεβού {n}"
    message.set_content(f"Καλημέρα {n}\n.a line that starts with a dot\n")
    return message


class HeldMaildir(Maildir):
    """Holds the first mail's store until `release` is set (the disk is slow)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.first_storing = threading.Event()
        self.release = threading.Event()
        self._first = True

    def store(self, content: bytes) -> Path:
        if self._first:
            self._first = False
            self.first_storing.set()
            self.release.wait(30)
        return super().store(content)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[HeldMaildir, int]]:
    handler, port = HeldMaildir(tmp_path / "mail"), free_port()
    with smtp_server(handler, port):
        try:
            yield handler, port
        finally:
            handler.release.set()


async def test_a_mail_being_stored_holds_up_no_other_session(sink: tuple[HeldMaildir, int]) -> None:
    handler, port = sink
    first = asyncio.create_task(aiosmtplib.send(mail(0), hostname="127.0.0.1", port=port, timeout=30))
    await asyncio.to_thread(handler.first_storing.wait, 10)
    assert not first.done()
    # While mail 0 is being written, three others go through on sessions of their own.
    async with asyncio.timeout(10):
        await asyncio.gather(*(aiosmtplib.send(mail(n), hostname="127.0.0.1", port=port) for n in (1, 2, 3)))
    assert not first.done(), "mail 0 is answered only once it is stored"
    handler.release.set()
    await first
    received = read_mail(handler.directory)
    assert sorted(str(m["Subject"]) for m in received) == [f"Ραντεβού {n}" for n in range(4)]
    by_subject = {str(m["Subject"]): m for m in received}
    assert by_subject["Ραντεβού 2"]["X-RcptTo"] == "zoe2@example.org"
    assert by_subject["Ραντεβού 2"].get_content() == "Καλημέρα 2\n.a line that starts with a dot\n"
    assert list((handler.directory / "tmp").iterdir()) == [], "nothing half-written is left"
