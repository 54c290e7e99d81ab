"""parse_inbound against realistic received mail (tests/fixtures/inbound), hostile input and hypothesis."""

from __future__ import annotations

import base64
import json
import uuid
from email.message import EmailMessage, Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.parser import BytesParser
from email.policy import SMTP
from email.policy import default as default_policy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_service.inbound.parsing import for_recipient, for_recipients, parse_for_recipients, parse_inbound, spam_score, split_mailbox_hash
from shared.schemas.inbound import InboundAddress, InboundHeader, InboundMessage

FIXTURES = Path(__file__).parents[2] / "fixtures" / "inbound"
MESSAGE_ID = "0c8f4a52-8a8e-4c55-9d0b-1f5c6e2b7a10"

# The keys of Postmark's documented inbound payload (postmark.js InboundWebhook), RawEmail aside.
POSTMARK_KEYS = {
    "From", "FromName", "FromFull", "To", "ToFull", "Cc", "CcFull", "Bcc", "BccFull", "OriginalRecipient", "ReplyTo",
    "Subject", "MessageID", "MessageStream", "MailboxHash", "Date", "TextBody", "HtmlBody", "StrippedTextReply", "Tag",
    "Headers", "Attachments",
}  # fmt: skip


def parse(name: str, recipient: str, *, include_raw: bool = False) -> InboundMessage:
    return parse_inbound((FIXTURES / name).read_bytes(), original_recipient=recipient, message_id=MESSAGE_ID, include_raw=include_raw)


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def content(message: InboundMessage, index: int) -> bytes:
    return base64.b64decode(message.Attachments[index].Content, validate=True)


def header(message: InboundMessage, name: str) -> str:
    return next(h.Value for h in message.Headers if h.Name == name)


class TestSplitMailboxHash:
    @pytest.mark.parametrize(
        ("address", "expected"),
        [
            ("hash+ticket42@x", ("hash@x", "ticket42")),
            ("support+a+b@example.com", ("support@example.com", "a+b")),
            ("plain@example.com", ("plain@example.com", "")),
            ("trailing+@example.com", ("trailing@example.com", "")),
            ("+onlyhash@example.com", ("+onlyhash@example.com", "")),
            ("no-domain+hash", ("no-domain", "hash")),
            ("", ("", "")),
        ],
    )
    def test_splits_at_the_first_plus_of_the_local_part(self, address: str, expected: tuple[str, str]) -> None:
        assert split_mailbox_hash(address) == expected

    @given(
        local=st.text(st.characters(blacklist_characters="+@", blacklist_categories=("Cs", "Cc")), min_size=1),
        mailbox_hash=st.text(st.characters(blacklist_characters="@", blacklist_categories=("Cs", "Cc")), min_size=1),
        domain=st.text(st.characters(blacklist_characters="@", blacklist_categories=("Cs", "Cc"))),
    )
    def test_inverts_plus_addressing(self, local: str, mailbox_hash: str, domain: str) -> None:
        assert split_mailbox_hash(f"{local}+{mailbox_hash}@{domain}") == (f"{local}@{domain}", mailbox_hash)


class TestSpamScore:
    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ([("X-Spam-Score", "-0.1")], -0.1),
            ([("x-spam-score", " 5.3 ")], 5.3),
            ([("X-Spam-Status", "Yes, score=7.2 required=5.0 tests=BAYES_99")], 7.2),
            ([("X-Spam-Status", "No, hits=-2.6 required=5.0")], -2.6),
            ([("X-Spam-Status", "No, score=1.0"), ("X-Spam-Score", "2.5")], 2.5),
            ([("X-Spam-Score", "3"), ("X-Spam-Score", "9")], 3.0),
            ([("X-Spam-Score", "high"), ("X-Spam-Status", "No, score=0.4")], 0.4),
            ([("X-Spam-Score", "nan")], None),
            ([("X-Spam-Score", "9" * 400)], None),
            ([("X-Spam-Status", "No")], None),
            ([("Subject", "score=9")], None),
            ([], None),
        ],
    )
    def test_reads_the_filter_headers(self, headers: list[tuple[str, str]], expected: float | None) -> None:
        assert spam_score([InboundHeader(Name=n, Value=v) for n, v in headers]) == expected

    def test_reads_the_parsed_payload(self) -> None:
        assert spam_score(parse("gmail_reply.eml", "support+ticket42@inbound.postgate.example").Headers) == -0.1


GMAIL_TEXT = """Danke, Dienstag um 14 Uhr passt mir gut.

Viele Grüße
Anna

On Mon, Mar 3, 2025 at 10:02 AM Postgate Support <
support+ticket42@inbound.postgate.example> wrote:

> Hallo Anna,
>
> können wir uns am Dienstag treffen?
>
> Bob
>
"""


class TestGmailReply:
    message = parse("gmail_reply.eml", "support+ticket42@inbound.postgate.example")

    def test_addresses(self) -> None:
        m = self.message
        assert (m.From, m.FromName) == ("anna.mueller@gmail.com", "Anna Müller")
        assert m.FromFull == InboundAddress(Email="anna.mueller@gmail.com", Name="Anna Müller", MailboxHash="")
        assert m.To == '"Postgate Support" <support+ticket42@inbound.postgate.example>'
        assert m.ToFull == [
            InboundAddress(Email="support+ticket42@inbound.postgate.example", Name="Postgate Support", MailboxHash="ticket42")
        ]
        assert m.Cc == '"Bob O\'Neil" <bob@example.org>'
        assert m.CcFull == [InboundAddress(Email="bob@example.org", Name="Bob O'Neil", MailboxHash="")]
        assert (m.Bcc, m.BccFull) == ("", [])
        assert m.ReplyTo == ""
        assert m.OriginalRecipient == "support+ticket42@inbound.postgate.example"
        assert m.MailboxHash == "ticket42"

    def test_header_fields(self) -> None:
        m = self.message
        assert m.Subject == "Re: Grüße aus München"
        assert m.Date == "Mon, 3 Mar 2025 11:13:52 +0100"
        assert m.MessageID == MESSAGE_ID
        assert (m.MessageStream, m.Tag) == ("inbound", "")

    def test_bodies(self) -> None:
        assert self.message.TextBody == crlf(GMAIL_TEXT)
        assert self.message.HtmlBody.startswith(
            '<div dir="ltr">Danke, Dienstag um 14 Uhr passt mir gut.<div><br></div><div>Viele Grüße</div>'
        )
        assert self.message.HtmlBody.endswith("Bob<br></blockquote></div>\r\n")
        assert self.message.Attachments == []

    def test_stripped_reply_drops_the_wrapped_attribution_and_quote(self) -> None:
        assert self.message.StrippedTextReply == "Danke, Dienstag um 14 Uhr passt mir gut.\r\n\r\nViele Grüße\r\nAnna"

    def test_headers_in_order_without_the_fields_of_their_own(self) -> None:
        assert [h.Name for h in self.message.Headers] == [
            "Return-Path", "Received", "Received", "DKIM-Signature", "X-Spam-Status", "X-Spam-Score", "Received-SPF",
            "MIME-Version", "References", "In-Reply-To", "X-Gm-Features", "Message-ID",
        ]  # fmt: skip
        assert header(self.message, "Message-ID") == "<CAKz8x=7Yb2FqT0vN1sM3h4Q@mail.gmail.com>"
        assert header(self.message, "X-Spam-Status") == (
            "No, score=-0.1 required=5.0 tests=DKIM_SIGNED,DKIM_VALID,\tDKIM_VALID_AU,FREEMAIL_FROM,SPF_PASS autolearn=ham autolearn_force=no"
        )
        assert header(self.message, "DKIM-Signature").startswith("v=1; a=rsa-sha256; c=relaxed/relaxed;        d=gmail.com; s=20230601;")
        assert all("\r" not in h.Value and "\n" not in h.Value for h in self.message.Headers)


OUTLOOK_TEXT = """Thanks Dana, approved. The numbers for Q2 look right to me, so please go ahead and send the final version to finance today.

Regards,
Carl

From: Dana Lee <dana.lee@example.com>
Sent: Monday, March 3, 2025 9:00 AM
To: Carl Jones <carl+budget@inbound.postgate.example>
Subject: Budget 2025

Hi Carl,

Please approve the attached budget.

Dana
"""


class TestOutlookReply:
    message = parse("outlook_reply.eml", "carl+budget@inbound.postgate.example")

    def test_addresses(self) -> None:
        m = self.message
        assert (m.From, m.FromName) == ("carl.jones@contoso.example", "Carl Jones")
        assert m.To == '"Dana Lee" <dana.lee@example.com>'
        assert m.Cc == '"Carl Jones" <carl+budget@inbound.postgate.example>'
        assert m.CcFull == [InboundAddress(Email="carl+budget@inbound.postgate.example", Name="Carl Jones", MailboxHash="budget")]
        assert (m.Bcc, m.BccFull) == ("", [])
        assert m.MailboxHash == "budget"

    def test_fields(self) -> None:
        m = self.message
        assert (m.Subject, m.Date) == ("RE: Budget 2025", "Mon, 3 Mar 2025 14:20:09 +0000")
        assert m.TextBody == crlf(OUTLOOK_TEXT)  # quoted-printable soft line breaks joined
        assert m.HtmlBody.startswith('<html xmlns:o="urn:schemas-microsoft-com:office:office">')  # base64 decoded
        assert m.HtmlBody.endswith("Dana<o:p></o:p></p></div></body></html>\n")
        assert [h.Name for h in m.Headers] == [
            "Received", "Thread-Topic", "Thread-Index", "Message-ID", "References", "In-Reply-To", "Accept-Language",
            "Content-Language", "X-MS-Has-Attach", "X-MS-TNEF-Correlator", "MIME-Version",
        ]  # fmt: skip
        assert header(m, "X-MS-Has-Attach") == ""

    def test_stripped_reply_drops_the_from_sent_block(self) -> None:
        assert self.message.StrippedTextReply == (
            "Thanks Dana, approved. The numbers for Q2 look right to me, so please go ahead and send the final version to finance today."
            "\r\n\r\nRegards,\r\nCarl"
        )


class TestOutlookOriginalMessage:
    message = parse("outlook_original_message.eml", "relatorios+fev@inbound.postgate.example")

    def test_iso_8859_1_quoted_printable(self) -> None:
        m = self.message
        assert (m.From, m.FromName, m.Subject) == ("luis.costa@exemplo.com.br", "Luís Costa", "RE: Relatório")
        assert m.To == '"João Silva" <joao@example.com.br>'
        assert m.TextBody.startswith("Olá João,\r\n\r\nSegue em anexo o relatório. Obrigado!\r\n")
        assert "From: João Silva [mailto:joao@example.com.br] \r\nSent: Friday" in m.TextBody
        assert m.HtmlBody == ""

    def test_stripped_reply_drops_the_original_message(self) -> None:
        assert self.message.StrippedTextReply == "Olá João,\r\n\r\nSegue em anexo o relatório. Obrigado!\r\n\r\nLuís"

    def test_recipient_missing_from_to_and_cc_is_bcc(self) -> None:
        m = self.message
        assert m.Bcc == "relatorios+fev@inbound.postgate.example"
        assert m.BccFull == [InboundAddress(Email="relatorios+fev@inbound.postgate.example", Name="", MailboxHash="fev")]
        assert m.MailboxHash == "fev"


class TestAppleMailReply:
    message = parse("apple_mail_reply.eml", "calls+room7@inbound.postgate.example")

    def test_fields(self) -> None:
        m = self.message
        assert m.To == '"Bob Smith" <bob@example.org>, calls+room7@inbound.postgate.example'
        assert [a.MailboxHash for a in m.ToFull] == ["", "room7"]
        assert m.TextBody == (
            "Works for me 👍\n\nSent from my iPhone\n\n> On 3 Mar 2025, at 10:12, Bob Smith <bob@example.org> wrote:\n"
            "> \n> \ufeffCan we move the call to 3pm?\n> \n> Bob\n"
        )  # LF line endings, as the file has them
        assert m.HtmlBody.startswith(
            '<html><head><meta http-equiv="content-type" content="text/html; charset=utf-8"></head><body dir="auto">Works for me 👍'
        )
        assert [h.Name for h in m.Headers] == ["Received", "Mime-Version", "Message-Id", "References", "In-Reply-To", "X-Mailer"]

    def test_stripped_reply_drops_the_quoted_attribution(self) -> None:
        assert self.message.StrippedTextReply == "Works for me 👍\n\nSent from my iPhone"


class TestInlineImageAndPdf:
    message = parse("inline_image_and_pdf.eml", "billing@inbound.postgate.example")

    def test_bodies_from_the_related_alternative(self) -> None:
        assert self.message.TextBody == "Hello,\r\n\r\nplease find invoice 2025-0042 attached.\r\n\r\nAcme Billing\r\n"
        assert self.message.HtmlBody.startswith('<html><body><p><img src="cid:logo.7f3a@acme.example" alt="Acme"></p>')

    def test_inline_image_carries_its_content_id(self) -> None:
        logo = self.message.Attachments[0]
        assert (logo.Name, logo.ContentType, logo.ContentID) == ("logo.png", "image/png", "logo.7f3a@acme.example")
        assert content(self.message, 0) == (FIXTURES / "logo.png").read_bytes()
        assert logo.ContentLength == len((FIXTURES / "logo.png").read_bytes())

    def test_pdf_is_byte_identical(self) -> None:
        pdf = self.message.Attachments[1]
        assert (pdf.Name, pdf.ContentType, pdf.ContentID) == ("Invoice-2025-0042.pdf", "application/pdf", "")
        assert content(self.message, 1) == (FIXTURES / "invoice.pdf").read_bytes()
        assert pdf.ContentLength == 597
        assert len(self.message.Attachments) == 2

    def test_truncated_in_an_attachment_returns_what_can_be_read(self) -> None:
        raw = (FIXTURES / "inline_image_and_pdf.eml").read_bytes()
        cut = parse_inbound(raw[: raw.index(b"JVBERi0x") + 200], original_recipient="billing@inbound.postgate.example")
        assert cut.TextBody == self.message.TextBody
        assert cut.Attachments[0] == self.message.Attachments[0]
        partial = base64.b64decode(cut.Attachments[1].Content)
        assert len(partial) > 100
        assert (FIXTURES / "invoice.pdf").read_bytes().startswith(partial)


class TestCharsets:
    def test_iso_8859_1_label_over_windows_1252_bytes(self) -> None:
        m = parse("iso_8859_1.eml", "angebote@inbound.postgate.example")
        assert (m.FromName, m.Subject) == ("Jürgen Weiß", "Grüße")
        assert m.TextBody == "Grüße aus Köln – der Preis beträgt 42 €.\r\nÀ bientôt, déjà vu, naïve façade.\r\n"

    def test_shift_jis_base64_body_and_iso_2022_jp_words(self) -> None:
        m = parse("shift_jis.eml", "info@inbound.postgate.example")
        assert (m.FromName, m.Subject) == ("佐藤 一郎", "会議のご案内")
        assert m.To == '"山田" <info@inbound.postgate.example>'
        assert m.TextBody == "山田様\r\n\r\nお世話になっております。\r\n①本日の会議は１５時からです。\r\n\r\n佐藤\r\n"

    def test_unknown_and_wrong_labels_fall_back_to_utf_8(self) -> None:
        m = parse("bad_charsets.eml", "support@inbound.postgate.example")
        assert (m.FromName, m.Subject) == ("Worf", "café and naïve")
        assert m.TextBody == "café labelled with a charset nobody knows"
        assert m.HtmlBody == "<p>naïve UTF-8 labelled us-ascii</p>"

    def test_utf_8_label_over_latin_1_bytes_reads_windows_1252(self) -> None:
        raw = b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nna\xefve caf\xe9 \x80\r\n"
        assert parse_inbound(raw, original_recipient="a@b").TextBody == "naïve café €\r\n"

    def test_raw_8bit_headers_read_as_utf_8_then_windows_1252(self) -> None:
        raw = b"From: J\xc3\xbcrgen <j@example.de>\r\nSubject: caf\xe9\r\nX-Note: \xe2\x82\xac\r\n\r\n"
        m = parse_inbound(raw, original_recipient="a@b")
        assert (m.FromName, m.Subject, header(m, "X-Note")) == ("Jürgen", "café", "€")


class TestAttachments:
    def test_rfc_2231_and_encoded_word_names_and_an_8bit_text_attachment(self) -> None:
        m = parse("attachment_names.eml", "docs@inbound.postgate.example")
        assert m.Subject == "Отчёт №2"
        assert m.TextBody == "Report attached.\r\n"
        assert [(a.Name, a.ContentType) for a in m.Attachments] == [
            ("Отчёт №2.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            ("прайс-лист.bin", "application/octet-stream"),
            ("notes.txt", "text/plain"),
        ]
        assert content(m, 0) == bytes(range(256)) * 3
        assert content(m, 1) == b"price list"
        assert content(m, 2) == "Zeile 1: Größe\r\nZeile 2: 10 €\r\n".encode("cp1252")
        assert [a.ContentLength for a in m.Attachments] == [768, 10, 31]

    def test_forwarded_message_is_attached_byte_identical(self) -> None:
        raw = (FIXTURES / "forwarded_rfc822.eml").read_bytes()
        m = parse_inbound(raw, original_recipient="archive+q2@inbound.postgate.example")
        assert m.TextBody == "See the numbers below.\r\n"
        [forwarded] = m.Attachments
        assert (forwarded.Name, forwarded.ContentType) == ("Quarterly numbers.eml", "message/rfc822")
        assert content(m, 0) == raw[raw.index(b"From: Finance") : raw.index(b"\r\n--------------fwd77--")]

    def test_forwarded_message_parses_with_its_own_attachment(self) -> None:
        m = parse("forwarded_rfc822.eml", "archive+q2@inbound.postgate.example")
        inner = parse_inbound(content(m, 0), original_recipient="mia@example.com")
        assert (inner.Subject, inner.From, inner.TextBody) == ("Quarterly numbers", "finance@example.com", "Numbers attached.")
        assert [(a.Name, a.ContentType) for a in inner.Attachments] == [("q.csv", "text/csv")]
        assert content(inner, 0) == b"quarter,revenue\r\nQ1,1200\r\nQ2,1350\r\n"

    def test_unnamed_enclosed_message_and_base64_encoded_rfc822(self) -> None:
        raw = (
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            b"--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(b"Subject: hi\r\n\r\nbody\r\n")
            + b"\r\n--b--\r\n"
        )
        [attached] = parse_inbound(raw, original_recipient="a@b").Attachments
        assert (attached.Name, attached.ContentType) == ("ForwardedMessage.eml", "message/rfc822")
        assert base64.b64decode(attached.Content) == b"Subject: hi\r\n\r\nbody\r\n"

    def test_second_text_part_and_calendar_part_are_attachments(self) -> None:
        raw = (
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
            b"--b\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\n"
            b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsecond\r\n--b--\r\n"
        )
        m = parse_inbound(raw, original_recipient="a@b")
        assert m.TextBody == "first"
        assert [(a.Name, a.ContentType, base64.b64decode(a.Content)) for a in m.Attachments] == [
            ("", "text/calendar", b"BEGIN:VCALENDAR"),
            ("", "text/plain", b"second"),
        ]

    def test_text_marked_attachment_is_not_the_body(self) -> None:
        raw = b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nfile"
        m = parse_inbound(raw, original_recipient="a@b")
        assert (m.TextBody, [a.Name for a in m.Attachments]) == ("", ["a.txt"])


class TestShapes:
    def test_html_only(self) -> None:
        m = parse("html_only_base64.eml", "orders+4711@inbound.postgate.example")
        assert (m.TextBody, m.StrippedTextReply) == ("", "")
        assert m.HtmlBody == (
            '<html><body><h1>Your order has shipped</h1><p>Tracking: <a href="https://track.example/1Z999">1Z999</a></p></body></html>'
        )
        assert (m.FromName, m.MailboxHash, m.Attachments) == ("Shop", "4711", [])

    def test_no_body(self) -> None:
        m = parse("no_body.eml", "monitor@inbound.postgate.example")
        assert (m.TextBody, m.HtmlBody, m.StrippedTextReply, m.Attachments) == ("", "", "", [])
        assert (m.Subject, m.From, m.FromName) == ("ping", "ping@example.net", "")
        assert [h.Name for h in m.Headers] == ["Message-ID"]

    def test_text_only_without_headers(self) -> None:
        m = parse_inbound(b"\r\nhello\r\n", original_recipient="a@b")
        assert (m.TextBody, m.From, m.Subject, m.Date, m.ToFull) == ("hello\r\n", "", "", "", [])

    def test_payload_has_postmarks_keys_and_raw_email_only_when_enabled(self) -> None:
        m = parse("gmail_reply.eml", "support+ticket42@inbound.postgate.example")
        assert set(m.model_dump(exclude_none=True)) == POSTMARK_KEYS
        raw = (FIXTURES / "gmail_reply.eml").read_bytes()
        with_raw = parse("gmail_reply.eml", "support+ticket42@inbound.postgate.example", include_raw=True)
        dumped = with_raw.model_dump(exclude_none=True)
        assert set(dumped) == POSTMARK_KEYS | {"RawEmail"}
        assert dumped["RawEmail"] == raw.decode()
        assert set(m.model_dump()["FromFull"]) == {"Email", "Name", "MailboxHash"}
        assert set(m.model_dump()["Headers"][0]) == {"Name", "Value"}
        assert set(parse("attachment_names.eml", "a@b").model_dump()["Attachments"][0]) == {
            "Name", "Content", "ContentType", "ContentLength", "ContentID",
        }  # fmt: skip

    def test_message_id_is_a_new_uuid_unless_given(self) -> None:
        raw = (FIXTURES / "no_body.eml").read_bytes()
        first, second = (parse_inbound(raw, original_recipient="a@b").MessageID for _ in range(2))
        assert first != second
        assert str(uuid.UUID(first)) == first

    def test_message_stream_is_passed_through(self) -> None:
        assert parse_inbound(b"", original_recipient="a@b", message_stream="support-inbound").MessageStream == "support-inbound"

    def test_addresses_with_quotes_encoded_commas_groups_and_reply_to(self) -> None:
        raw = (
            b'From: "Doe \\"JD\\" John" <jd+x@example.com>\r\n'
            b"To: =?utf-8?q?Doe=2C_Jane?= <jane@example.com>, undisclosed-recipients:;\r\n"
            b"Cc: Team: a@example.com, B <b@example.com>;\r\n"
            b"Reply-To: Help Desk <help+7@example.com>\r\n\r\n"
        )
        m = parse_inbound(raw, original_recipient="jane@example.com")
        assert m.FromFull == InboundAddress(Email="jd+x@example.com", Name='Doe "JD" John', MailboxHash="x")
        assert m.To == '"Doe, Jane" <jane@example.com>'
        assert m.Cc == 'a@example.com, "B" <b@example.com>'
        assert m.ReplyTo == '"Help Desk" <help+7@example.com>'
        assert m.BccFull == []


NUL_MESSAGE = (
    b"From: Nul\x00 Name <nul@example.com>\r\nSubject: a\x00b\r\nX-Nul: c\x00d\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbo\x00dy\r\n"
    b'--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="f\x00.bin"\r\n\r\n\x00\x01\r\n--b--\r\n'
)


class TestHostileInput:
    def test_nul_bytes_are_stripped_from_every_text_field_but_kept_in_attachments(self) -> None:
        m = parse_inbound(NUL_MESSAGE, original_recipient="a\x00@b", message_stream="in\x00bound", include_raw=True)
        assert "\\u0000" not in m.model_dump_json()
        assert (m.FromName, m.Subject, header(m, "X-Nul"), m.TextBody) == ("Nul Name", "ab", "cd", "body")
        assert (m.Attachments[0].Name, content(m, 0)) == ("f.bin", b"\x00\x01")
        assert m.OriginalRecipient == "a@b"

    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"\r\n\r\n",
            b"\xff\xfe\x00garbage\x80\x81",
            b"No colon in this header line\r\nSubject: still read\r\n\r\nbody",
            b"Content-Type: multipart/mixed\r\n\r\n--x\r\nno boundary parameter\r\n",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nnever closed",
            b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64===\r\nYWJj",
            b'Content-Type: ;;;==="""//\r\nContent-Disposition: attachment; filename*=\'\'\r\n\r\nz',
            b"Content-Type: application/x; name*0*=x-unknown'zz'%ZZ%; name*1=\"\r\n\r\nz",
            b'To: garbage <<<>>> @@ ,,, "\r\nFrom: ((((((((\r\n\r\n',
            b"From: " + b"(" * 50_000 + b"\r\n\r\n",
            b"Subject: " + b"=?utf-8?q?a?= " * 50_000 + b"\r\n\r\n",
            b"Content-Type: application/x; " + b"a=b; " * 200_000 + b"\r\n\r\nz",
            b"Content-Type: multipart/mixed; boundary=" + b"a" * 1_000_000 + b"\r\n\r\nz",
            b"X-Long: " + b"a" * 2_000_000 + b"\r\n\r\nz",
            b"Content-Type: text/plain; charset=base64\r\n\r\nx",
            b"Content-Type: text/plain; charset=unicode_escape\r\n\r\n\\u0041",
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset*=; charset*0*=\r\n\r\nx\r\n--b--\r\n",
            b"Content-Type: multipart/mixed; boundary*=b; boundary*0*=c\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
        ],
        ids=lambda raw: raw[:40].decode("latin-1"),
    )
    def test_never_raises(self, raw: bytes) -> None:
        m = parse_inbound(raw, original_recipient="a@b")
        m.model_dump_json()

    def test_absurd_nesting_keeps_the_headers(self) -> None:
        raw = b"Subject: deep\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
        for level in range(1, 3000):
            raw += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (level - 1, level)
        m = parse_inbound(raw + b"--b2999\r\nContent-Type: text/plain\r\n\r\ndeep\r\n", original_recipient="a@b")
        assert m.Subject == "deep"

    def test_nul_in_rfc_2231_charsets_loses_only_the_charset(self) -> None:
        raw = (
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset*=utf\x00-8''x\r\n\r\nhello\r\n"
            b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=utf\x00-8''a.pdf\r\n\r\n%PDF\r\n--b--\r\n"
        )
        m = parse_inbound(raw, original_recipient="a@b")
        assert m.TextBody == "hello"
        assert [(a.Name, base64.b64decode(a.Content)) for a in m.Attachments] == [("", b"%PDF")]

    def test_charset_label_naming_a_python_codec_is_no_charset(self) -> None:
        raw = b"Content-Type: text/plain; charset=unicode_escape\r\n\r\n\\u0041"
        assert parse_inbound(raw, original_recipient="a@b").TextBody == "\\u0041"


def _no_bad_text(message: InboundMessage) -> None:
    text = json.dumps(message.model_dump(exclude_none=True), ensure_ascii=False)
    assert "\x00" not in text
    text.encode("utf-8")  # no lone surrogates


FIXTURE_BYTES = [path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))]


def _alphabet(charset: str) -> list[str]:
    """Characters that survive a round trip through the charset alone (Python's shift_jis, say,
    encodes '¥' as the byte it decodes to a backslash): printable ASCII, Latin, Greek, Cyrillic,
    kana, and some CJK and Hangul."""
    pool = [*range(0x20, 0x7F), *range(0xA0, 0x530), 0x20AC, *range(0x3041, 0x30FF), *range(0x4E00, 0x4F00), *range(0xAC00, 0xAD00)]
    found = []
    for point in pool:
        char = chr(point)
        try:
            if char.encode(charset).decode(charset) == char:
                found.append(char)
        except UnicodeError:
            continue
    return [*found, "\n"]


BODY_ALPHABETS = {
    charset: _alphabet(charset)
    for charset in ["utf-8", "iso-8859-1", "windows-1252", "koi8-r", "shift_jis", "euc-kr", "gb2312", "big5", "iso-2022-jp"]
}


# Fragments that have broken the standard library's parsers: NULs and 8-bit bytes in parameters,
# RFC 2231 and RFC 2047 syntax, transfer encodings, boundaries, quotes and escapes.
HOSTILE_ATOMS = st.sampled_from(
    [b"utf-8", b"x\x00y", b"''", b"%ZZ", b"%C3%A9", b"=?utf-8?q?a=C3?=", b"=?x?b?w6k?=", b'"', b";", b"\\", b"\xff\xfe", b"base64",
     b"quoted-printable", b"x-uuencode", b"begin 644 f\r\n", b"M\x7f\x7f", b"*0*=", b"*1=", b"*=", b"charset", b"name", b"filename",
     b"boundary=b", b"--b", b"--b--", b"\r\n", b" ", b"text/plain", b"text/html", b"multipart/mixed", b"multipart/related",
     b"message/rfc822", b"attachment", b"inline", b"=", b"==", b"<a@b>", b"a@b", b"(", b")", b",", b":", b"YWJj"]
)  # fmt: skip
HOSTILE_VALUES = st.lists(HOSTILE_ATOMS, max_size=10).map(b"".join)
HOSTILE_PARAMETERS = st.lists(
    st.tuples(
        st.sampled_from([b"charset", b"name", b"filename", b"boundary", b"start"]),
        st.sampled_from([b"=", b"*=", b"*0*=", b"*1*=", b"*0=", b"*1="]),
        HOSTILE_VALUES,
    ),
    max_size=4,
).map(lambda params: b"".join(b"; " + name + mark + value for name, mark, value in params))
HOSTILE_HEADERS = st.one_of(
    st.tuples(st.sampled_from([b"Content-Type", b"Content-Disposition"]), st.tuples(HOSTILE_VALUES, HOSTILE_PARAMETERS).map(b"".join)),
    st.tuples(st.sampled_from([b"Content-Transfer-Encoding", b"Content-ID", b"From", b"To", b"Subject"]), HOSTILE_VALUES),
)


@st.composite
def hostile_mime(draw: st.DrawFn) -> bytes:
    """Header blocks and bodies assembled from hostile fragments, nested parts included."""
    blocks = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        headers = draw(st.lists(HOSTILE_HEADERS, max_size=6))
        body = draw(HOSTILE_VALUES)
        blocks.append(b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + body)
    return b"Content-Type: multipart/mixed; boundary=b\r\n" + b"\r\n--b\r\n".join(blocks) + b"\r\n--b--\r\n"


@st.composite
def mime_trees(draw: st.DrawFn, depth: int = 0) -> Message:
    """Random MIME structures of text, html, attached text and binary parts in mixed, alternative
    and related containers, for comparing the body choice with the standard library's get_body."""
    kinds = ["plain", "html", "attached-plain", "binary"] + (["mixed", "alternative", "related"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind in ("mixed", "alternative", "related"):
        container = MIMEMultipart(kind)
        for child in draw(st.lists(mime_trees(depth + 1), min_size=1, max_size=3)):
            container.attach(child)
        return container
    if kind == "binary":
        return MIMEApplication(draw(st.binary(min_size=1, max_size=50)))  # an empty unnamed part is dropped as MIME debris
    text = draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)) + "\n"
    part = MIMEText(text, "html" if kind == "html" else "plain", "utf-8")
    if kind == "attached-plain":
        part.add_header("Content-Disposition", "attachment", filename="notes.txt")
    return part


class TestProperties:
    @settings(deadline=None)
    @given(mime_trees())
    def test_bodies_are_the_ones_the_standard_library_picks(self, tree: Message) -> None:
        raw = tree.as_bytes()
        reference = BytesParser(policy=default_policy).parsebytes(raw)
        assert isinstance(reference, EmailMessage)
        parsed = parse_inbound(raw, original_recipient="a@b")
        for kind, body in (("plain", parsed.TextBody), ("html", parsed.HtmlBody)):
            part = reference.get_body(preferencelist=(kind,))
            expected = "" if part is None else part.get_content()
            assert body.replace("\r\n", "\n") == expected.replace("\r\n", "\n")
        leaves = [p for p in reference.walk() if not p.is_multipart()]
        assert len(parsed.Attachments) == len(leaves) - bool(parsed.TextBody) - bool(parsed.HtmlBody)

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=4096))
    def test_arbitrary_bytes_never_raise(self, raw: bytes) -> None:
        _no_bad_text(parse_inbound(raw, original_recipient="a@b", include_raw=True))

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(hostile_mime())
    def test_hostile_mime_never_raises(self, raw: bytes) -> None:
        _no_bad_text(parse_inbound(raw, original_recipient="a@b", include_raw=True))

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        raw=st.sampled_from(FIXTURE_BYTES),
        cut=st.integers(min_value=0, max_value=4000),
        flips=st.lists(st.tuples(st.integers(min_value=0, max_value=4000), st.integers(min_value=0, max_value=255)), max_size=20),
    )
    def test_damaged_real_mail_never_raises(self, raw: bytes, cut: int, flips: list[tuple[int, int]]) -> None:
        damaged = bytearray(raw[: max(cut, 1)])
        for position, value in flips:
            damaged[position % len(damaged)] = value
        _no_bad_text(parse_inbound(bytes(damaged), original_recipient="a@b", include_raw=True))

    @settings(deadline=None)
    @given(
        data=st.data(),
        charset=st.sampled_from(sorted(BODY_ALPHABETS)),
        encoding=st.sampled_from([None, "quoted-printable", "base64"]),
        subtype=st.sampled_from(["plain", "html"]),
        smtp=st.booleans(),
    )
    def test_text_bodies_parse_back(self, data: st.DataObject, charset: str, encoding: str | None, subtype: str, smtp: bool) -> None:
        text = data.draw(st.text(st.sampled_from(BODY_ALPHABETS[charset]), max_size=300))
        message = EmailMessage()
        message["Subject"] = "property"
        message.set_content(text, subtype=subtype, charset=charset, cte=encoding)
        parsed = parse_inbound(message.as_bytes(policy=SMTP if smtp else default_policy), original_recipient="a@b")
        body = parsed.TextBody if subtype == "plain" else parsed.HtmlBody
        assert body.replace("\r\n", "\n").rstrip("\n") == text.replace("\r", "\n").rstrip("\n")

    @settings(deadline=None)
    @given(subject=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=200))
    def test_subjects_parse_back(self, subject: str) -> None:
        normalized = " ".join(subject.split())
        message = EmailMessage()
        message["Subject"] = normalized
        message.set_content("x")
        parsed = parse_inbound(message.as_bytes(policy=SMTP), original_recipient="a@b")
        assert " ".join(parsed.Subject.split()) == normalized

    @settings(deadline=None)
    @given(
        attachments=st.lists(
            st.tuples(
                st.binary(max_size=2000),
                st.sampled_from([("application", "pdf"), ("image", "png"), ("application", "octet-stream"), ("text", "csv")]),
                # A name wrapped whole in <…> loses the brackets: the stdlib's parameter unquoting
                # (email.utils.unquote) strips them, as it strips quotes; no mail client writes one.
                st.text(
                    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters='"\\'), min_size=1, max_size=60
                ).filter(lambda n: not (n.strip().startswith("<") and n.strip().endswith(">"))),
                st.booleans(),
            ),
            max_size=4,
        ),
        body=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=200),
    )
    def test_attachments_parse_back_byte_identical(self, attachments: list[tuple[bytes, tuple[str, str], str, bool]], body: str) -> None:
        message = EmailMessage()
        message["Subject"] = "files"
        message.set_content(body)
        expected: list[tuple[str, str, bytes, str]] = []
        for data, (maintype, subtype), filename, inline in attachments:
            name = " ".join(filename.split()) or "file"
            cid = f"<part{len(expected)}@example.com>" if inline else None
            message.add_attachment(data, maintype, subtype, filename=name, cid=cid, disposition="inline" if inline else "attachment")
            expected.append((name, f"{maintype}/{subtype}", data, cid.strip("<>") if cid else ""))
        parsed = parse_inbound(message.as_bytes(policy=SMTP), original_recipient="a@b")
        got = [(a.Name, a.ContentType, base64.b64decode(a.Content), a.ContentID) for a in parsed.Attachments]
        assert got == expected
        assert [a.ContentLength for a in parsed.Attachments] == [len(data) for _, _, data, _ in expected]


class TestOneParseForEveryRecipient:
    def test_each_recipient_gets_its_own_hash_and_bcc_without_touching_the_others(self) -> None:
        raw = (FIXTURES / "gmail_reply.eml").read_bytes()
        parsed = parse_for_recipients(raw)
        named = for_recipient(parsed, original_recipient="support+ticket42@inbound.postgate.example", message_id="a")
        unnamed = for_recipient(parsed, original_recipient="Archive+All@inbound.postgate.example", message_id="b")
        assert (named.MailboxHash, named.BccFull, named.MessageID) == ("ticket42", [], "a")
        assert (unnamed.MailboxHash, unnamed.Bcc, unnamed.MessageID) == ("All", "Archive+All@inbound.postgate.example", "b")
        assert (parsed.BccFull, parsed.OriginalRecipient) == ([], "")
        assert named == parse_inbound(raw, original_recipient="support+ticket42@inbound.postgate.example", message_id="a")

    def test_recipients_of_one_transaction_are_one_payload_with_the_first_ones_hash(self) -> None:
        raw = (FIXTURES / "gmail_reply.eml").read_bytes()
        parsed = parse_for_recipients(raw)
        named = parsed.ToFull[0].Email
        payload = for_recipients(
            parsed,
            recipients=[
                "Archive+All@inbound.postgate.example",
                named.upper(),
                "x+2@inbound.postgate.example",
                "archive+all@inbound.postgate.example",
            ],
            message_id="a",
        )
        assert (payload.OriginalRecipient, payload.MailboxHash, payload.MessageID) == ("Archive+All@inbound.postgate.example", "All", "a")
        assert [(b.Email, b.MailboxHash) for b in payload.BccFull] == [
            ("Archive+All@inbound.postgate.example", "All"),
            ("x+2@inbound.postgate.example", "2"),
        ]
        assert payload.ToFull == parsed.ToFull
        assert payload == parse_inbound(
            raw,
            original_recipient="Archive+All@inbound.postgate.example",
            other_recipients=["x+2@inbound.postgate.example"],
            message_id="a",
        )
