"""An e-mail's bytes, written directly: headers, a plain-text and an HTML alternative, and
calendar files.

The standard library's `EmailMessage` parses every header it is given into a tree and folds it
again when the mail is written: about 40 % of notifications' CPU per mail went there (py-spy,
`bench/notifications.py`). The mails here have one fixed shape, so they are written as bytes
in one pass, with the standard library's encoders (RFC 2047 encoded words for headers,
quoted-printable or base64 for bodies, whichever is shorter, 7bit when the text is plain
ASCII). What is written parses back with `email` to the same headers and parts
(`tests/unit/test_mime.py`).
"""

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from email import message_from_string
from email import policy as email_policy
from email.header import Header
from email.message import EmailMessage
from email.utils import formataddr

CRLF = b"\r\n"
MAX_LINE = 78  # RFC 5322's recommended line length; headers longer than this are folded
Address = tuple[str, str]  # (display name, e-mail address)


@dataclass
class Attachment:
    filename: str
    content: bytes
    content_type: str  # e.g. "text/calendar"
    params: dict[str, str] = field(default_factory=dict)  # e.g. {"method": "REQUEST"}


@dataclass(frozen=True)
class Mail:
    """What goes over SMTP: the envelope and the message's bytes (CRLF line ends)."""

    sender: str  # the envelope's MAIL FROM address
    recipients: list[str]
    data: bytes
    utf8: bool = False  # an address is not ASCII: the server must offer SMTPUTF8

    def parsed(self) -> EmailMessage:
        """The message as the standard library reads it, as a mail client shows it (line ends
        as the platform's; UTF-8 headers, RFC 6532, read as UTF-8)."""
        text = self.data.decode("utf-8").replace("\r\n", "\n")
        parsed = message_from_string(text, policy=email_policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def header(name: str, value: str) -> bytes:
    """One header line (folded when long), RFC 2047 encoded words where it is not ASCII."""
    _one_line(name, value)
    if value.isascii():
        return _folded(f"{name}: {value}").encode() + CRLF
    folded = Header(value, "utf-8", maxlinelen=MAX_LINE, header_name=name).encode(linesep="\r\n")
    return f"{name}: {folded}".encode() + CRLF


def _one_line(name: str, *values: str) -> None:
    """A line break in a header's value would start a header of its own (header injection)."""
    if any("\r" in value or "\n" in value for value in values):
        raise ValueError(f"a line break in the {name} header")


def _folded(line: str) -> str:
    """An ASCII header line folded before spaces into lines of at most MAX_LINE where it can
    be (a word longer than that, a URL, stays whole: RFC 5322 allows 998). The value's first
    word stays on the name's line: some readers keep the space of a fold right after the
    colon as part of the value."""
    if len(line) <= MAX_LINE:
        return line
    name, *words = line.split(" ")
    lines, current = [], f"{name} {words.pop(0)}" if words else name
    for word in words:
        if len(current) + 1 + len(word) > MAX_LINE:
            lines.append(current)
            current = " " + word  # the fold: CRLF, then the space it was before
        else:
            current = f"{current} {word}"
    return "\r\n".join([*lines, current])


def _address_header(name: str, who: Address) -> bytes:
    """`Name: Display Name <address>`: the display name quoted or encoded as it needs to be,
    folded like any header. An address that is not ASCII is written as it is (RFC 6532: the
    envelope then asks for SMTPUTF8)."""
    shown, email = who
    _one_line(name, shown, email)
    if not shown:
        return _folded(f"{name}: {email}").encode() + CRLF
    if shown.isascii():  # quoted where it holds specials ("Doe, Jane")
        lines = _folded(f"{name}: " + formataddr((shown, "x@x")).removesuffix(" <x@x>")).split("\r\n")
    else:
        encoded = Header(shown, "utf-8", maxlinelen=MAX_LINE, header_name=name).encode(linesep="\r\n")
        lines = f"{name}: {encoded}".split("\r\n")
    if len(lines[-1]) + len(email) + 3 <= MAX_LINE:
        lines[-1] += f" <{email}>"
    else:
        lines.append(f" <{email}>")
    return "\r\n".join(lines).encode() + CRLF


def _body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body with CRLF line ends) for a text part in UTF-8."""
    lines = text.splitlines()
    if text.isascii() and all(len(line) <= 998 for line in lines):
        return "7bit", "\r\n".join(lines).encode() + CRLF
    raw = "\n".join(lines).encode() + b"\n"
    quoted = binascii.b2a_qp(raw, istext=True).replace(b"\n", CRLF)
    based = base64.encodebytes(raw).replace(b"\n", CRLF)
    return ("quoted-printable", quoted) if len(quoted) <= len(based) else ("base64", based)


def _params(params: dict[str, str]) -> str:
    return "".join(f'; {key}="{value}"' for key, value in params.items())


def _text_part(text: str, subtype: str) -> bytes:
    encoding, body = _body(text)
    return (
        header("Content-Type", f'text/{subtype}; charset="utf-8"')
        + header("Content-Transfer-Encoding", encoding)
        + CRLF
        + body
    )


def _attachment_part(attachment: Attachment) -> bytes:
    return (
        header("Content-Type", attachment.content_type + _params(attachment.params))
        + header("Content-Transfer-Encoding", "base64")
        + header("Content-Disposition", f"attachment{_params({'filename': attachment.filename})}")
        + CRLF
        + base64.encodebytes(attachment.content).replace(b"\n", CRLF)
    )


def _multipart(subtype: str, parts: list[bytes]) -> bytes:
    boundary = f"=_c2f_{secrets.token_hex(12)}"
    marker = f"--{boundary}".encode()
    while any(marker in part for part in parts):  # as good as never: a 7bit part holds it
        boundary = f"=_c2f_{secrets.token_hex(12)}"
        marker = f"--{boundary}".encode()
    out = [header("Content-Type", f'multipart/{subtype}; boundary="{boundary}"'), CRLF]
    for part in parts:
        out += [marker, CRLF, part, CRLF]
    out += [marker, b"--", CRLF]
    return b"".join(out)


def write(
    headers: list[tuple[str, str | Address]],
    *,
    text: str,
    html: str,
    attachments: list[Attachment] | None = None,
) -> bytes:
    """A message: `headers` in order (an address as (display name, address)), then the plain
    text and the HTML as alternatives, then the attachments (multipart/mixed)."""
    head = b"".join(
        header(name, value) if isinstance(value, str) else _address_header(name, value)
        for name, value in headers
    )
    content = _multipart("alternative", [_text_part(text, "plain"), _text_part(html, "html")])
    if attachments:
        content = _multipart("mixed", [content, *(_attachment_part(a) for a in attachments)])
    return head + header("MIME-Version", "1.0") + content
