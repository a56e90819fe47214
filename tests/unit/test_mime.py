"""The e-mails notifications writes as bytes read back, with the standard library's parser,
as what was meant: every header, both alternatives and the calendar files."""

import pytest

from c2f_notifications import mime

UNSUBSCRIBE = "<https://n.example/unsubscribe/" + "x" * 180 + ">"
GREEK = "Η εγγραφή σας στην εκδήλωση Smart City Brokerage Sofia επιβεβαιώθηκε"


def write(subject: str, text: str, html: str = "<p>hi</p>", **kwargs: object) -> mime.Mail:
    to = kwargs.pop("to", ("Ελένη Παπαδοπούλου", "eleni@example.gr"))
    assert isinstance(to, tuple)
    data = mime.write(
        [
            ("From", ("C2Future Match", "noreply@c2future.example")),
            ("To", to),
            ("Subject", subject),
            ("Message-ID", "<m1@c2future-match>"),
            ("List-Unsubscribe", UNSUBSCRIBE),
        ],
        text=text,
        html=html,
        attachments=kwargs.pop("attachments", None),  # type: ignore[arg-type]
    )
    return mime.Mail("noreply@c2future.example", [to[1]], data, utf8=not to[1].isascii())


def test_headers_read_back_as_written_and_lines_stay_short() -> None:
    mail = write(GREEK, "Καλώς ήρθατε")
    parsed = mail.parsed()
    assert parsed["Subject"] == GREEK
    [to] = parsed["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Ελένη Παπαδοπούλου", "eleni@example.gr")
    assert parsed["From"].addresses[0].display_name == "C2Future Match"
    assert parsed["Message-ID"] == "<m1@c2future-match>"
    assert parsed["List-Unsubscribe"] == UNSUBSCRIBE, "a long URL is not split, nor moved off its line"
    head = mail.data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii(), "non-ASCII header text goes as encoded words"
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if b"/unsubscribe/" not in line)


def test_a_long_ascii_subject_is_folded_and_unfolds_to_itself() -> None:
    subject = " ".join(["partners"] * 30)
    mail = write(subject, "x")
    head = mail.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert max(len(line) for line in head if b"/unsubscribe/" not in line) <= 78
    assert mail.parsed()["Subject"] == subject


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Plain English only.\nTwo lines.", "7bit"),
        ("Su inscripción en «Día B2B» está confirmada.\nGracias.", "quoted-printable"),
        (GREEK + "\n" + GREEK, "base64"),
    ],
)
def test_each_body_reads_back_in_the_shortest_safe_encoding(text: str, encoding: str) -> None:
    parsed = write("s", text, html=f"<p>{text}</p>").parsed()
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert plain["Content-Transfer-Encoding"] == encoding
    assert plain.get_content() == text + "\n" and html.get_content() == f"<p>{text}</p>\n"
    assert plain.get_content_charset() == "utf-8"


def test_calendar_files_follow_the_alternatives() -> None:
    ics = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"
    attachments = [mime.Attachment("meeting.ics", ics, "text/calendar", {"method": "REQUEST"})]
    parsed = write("s", "text", attachments=attachments).parsed()
    assert parsed.get_content_type() == "multipart/mixed"
    assert parsed.get_body(("plain",)) is not None and parsed.get_body(("html",)) is not None
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "REQUEST" and attachment.get_filename() == "meeting.ics"
    assert attachment.get_payload(decode=True) == ics


def test_a_name_with_a_comma_stays_one_address() -> None:
    [to] = write("s", "x", to=("Doe, Jane", "jane@example.org")).parsed()["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Doe, Jane", "jane@example.org")


def test_an_address_that_is_not_ascii_asks_for_smtputf8() -> None:
    mail = write("s", "x", to=("Ана", "ана@пример.бг"))
    assert mail.utf8
    [to] = mail.parsed()["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Ана", "ана@пример.бг")


def test_a_line_break_in_a_header_is_refused() -> None:
    with pytest.raises(ValueError, match="Subject"):
        write("Hello\r\nBcc: everyone@example.org", "x")
    with pytest.raises(ValueError, match="To"):
        write("s", "x", to=("Eve\nBcc: everyone@example.org", "eve@example.org"))
