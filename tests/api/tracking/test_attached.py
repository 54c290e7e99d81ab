"""Tracking never enters an attached message (issue 22, row 9 / item 7): a `message/rfc822` or
`message/global` part goes out byte for byte, its links untracked, while the message around it is
tracked as usual."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from api_service.tracking.rewrite import Plan, count_tracked_links, personalise_mime
from shared.constants import ClickLocation
from shared.schemas.smtp import SMTP_SUBMIT_PATH
from tests.api.conftest import SinkHandler, Worker
from tests.factories import INTERNAL, create_domain, create_server, message

PIXEL = "https://track.example/t/o/PIXEL"
# An attached message as mail programs forward them: its own header spacing (which the stdlib
# generator would respace), its own links.
INNER = (
    b"From: Friend <friend@elsewhere.example>\r\nTo:  reader@example.net\r\nSubject:forwarded, no space\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<p>Inner <a href="https://inner.example/secret">link</a> https://inner.example/text</p>\r\n'
)
PART = re.compile(rb"Content-Type: message/[a-z0-9]+[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n(.*?)\r\n--", re.S)


def tracked(url: str, location: ClickLocation) -> str:
    return f"https://track.example/t/c/{location.value}"


def forwarding(content_type: str, encoding: str, body: bytes, *, closed: bool = True) -> bytes:
    return (
        b"From: app@example.org\r\nTo: reader@example.net\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b'--outer\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n'
        b"--alt\r\nContent-Type: text/plain\r\n\r\nOuter https://outer.example/text\r\n"
        b'--alt\r\nContent-Type: text/html\r\n\r\n<p><a href="https://outer.example/html">outer</a></p>\r\n--alt--\r\n'
        b"--outer\r\nContent-Type: " + content_type.encode() + b"\r\nContent-Transfer-Encoding: " + encoding.encode() + b"\r\n"
        b'Content-Disposition: attachment; filename="fwd.eml"\r\n\r\n' + body + b"\r\n--outer" + (b"--\r\n" if closed else b"\r\n")
    )


def base64_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip(b"\r\n")


CASES = [("message/rfc822", "7bit", INNER), ("message/global", "8bit", INNER), ("message/rfc822", "base64", base64_lines(INNER))]


class TestRewriting:
    @pytest.mark.parametrize(("content_type", "encoding", "body"), CASES)
    def test_the_attached_message_goes_out_byte_for_byte(self, content_type: str, encoding: str, body: bytes) -> None:
        raw = forwarding(content_type, encoding, body)
        out = personalise_mime(raw, Plan(pixel_url=PIXEL, track_html=True, track_text=True, link=tracked))
        assert b"outer.example" not in out
        assert PIXEL.encode() in out
        [part] = PART.findall(out)
        assert part == body
        assert out.endswith(b"\r\n\r\n" + body + b"\r\n--outer--\r\n")
        assert count_tracked_links(raw, html_links=True, text_links=True) == 2

    @settings(max_examples=300, deadline=None)
    @given(
        st.sampled_from(["message/rfc822", "message/global", "message/delivery-status", "message/partial"]),
        st.sampled_from(["7bit", "8bit", "base64", "quoted-printable"]),
        st.binary(max_size=400)
        | st.lists(st.sampled_from([INNER, b"\r\n", b"\n", b"\r", b"X-A:b\r\n", b"<a href='https://i.example/'>i</a>"])).map(b"".join),
    )
    def test_any_attached_message_keeps_its_bytes(self, content_type: str, encoding: str, body: bytes) -> None:
        assume(b"--outer" not in body)
        raw = forwarding(content_type, encoding, body)
        out = personalise_mime(raw, Plan(pixel_url=PIXEL, track_html=True, track_text=True, link=tracked))
        assert out.endswith(b"\r\n\r\n" + body + b"\r\n--outer--\r\n")
        assert out == raw or b"outer.example" not in out

    def test_an_attached_message_whose_bytes_cannot_be_matched_keeps_the_bodies_as_stored(self) -> None:
        raw = forwarding("message/rfc822", "7bit", INNER, closed=False)  # no closing delimiter
        assert personalise_mime(raw, Plan(pixel_url=PIXEL, track_html=True, track_text=True, link=tracked)) == raw

    def test_a_message_that_is_itself_a_message_part_is_left_alone(self) -> None:
        raw = b"From: app@example.org\r\nContent-Type: message/rfc822\r\n\r\n" + INNER
        assert personalise_mime(raw, Plan(pixel_url=PIXEL, track_html=True, track_text=True, link=tracked)) == raw
        assert count_tracked_links(raw, html_links=True, text_links=True) == 0


# --- over the wire: the REST API and the SMTP gateway, delivered by the worker ------------------------


@pytest.mark.asyncio
async def test_an_attached_message_sent_over_the_api_is_delivered_unchanged(
    client: httpx.AsyncClient, worker: Worker, sink: tuple[SinkHandler, int]
) -> None:
    server = await create_server(client, TrackLinks="HtmlAndText", TrackOpens=True)
    await create_domain(client, "example.org")
    attachment = {"Name": "fwd.eml", "Content": base64.b64encode(INNER).decode(), "ContentType": "message/rfc822"}
    sent = await client.post(
        "/email",
        json=message(From="app@example.org", HtmlBody='<a href="https://outer.example/html">x</a>', Attachments=[attachment]),
        headers=server.headers,
    )
    assert sent.status_code == 200, sent.text
    dump = await client.get(f"/messages/outbound/{sent.json()['MessageID']}/dump", headers=server.headers)
    [stored] = PART.findall(dump.json()["Body"].encode())
    assert await worker.deliver() == 1
    [received] = sink[0].received
    assert b"https://outer.example/html" not in received.data
    [delivered] = PART.findall(received.data)
    assert delivered == stored


@pytest.mark.asyncio
@pytest.mark.parametrize("content_type", ["message/rfc822", "message/global"])
async def test_an_attached_message_submitted_over_smtp_is_delivered_unchanged(
    client: httpx.AsyncClient, worker: Worker, sink: tuple[SinkHandler, int], content_type: str
) -> None:
    server = await create_server(client, SmtpApiActivated=True, TrackLinks="HtmlAndText", TrackOpens=True)
    await create_domain(client, "example.org")
    raw = forwarding(content_type, "8bit", INNER)
    body = {"MailFrom": "app@example.org", "RcptTo": ["reader@example.net"], "RawMessage": base64.b64encode(raw).decode()}
    submitted = await client.post(SMTP_SUBMIT_PATH, json=body, headers=server.headers | INTERNAL)
    assert submitted.status_code == 200, submitted.text
    assert await worker.deliver() == 1
    [received] = sink[0].received
    assert b"outer.example" not in received.data
    assert b"\r\n\r\n" + INNER + b"\r\n--outer--" in received.data
