"""The charset and encoded-word decoding, proved against the standard library's encoders."""

from __future__ import annotations

from email.header import Header
from email.policy import default as default_policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_service.inbound.text import clean, codecs_for, decode_bytes, header_text

PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))


class TestCodecsFor:
    @pytest.mark.parametrize(
        ("label", "codecs"),
        [
            ("UTF-8", ["utf-8"]),
            ('"utf8"', ["utf-8"]),
            ("ISO-8859-1", ["cp1252"]),
            ("latin1", ["cp1252"]),
            ("us-ascii", ["ascii"]),
            ("Shift_JIS", ["shift_jis", "cp932"]),
            ("euc-kr", ["euc_kr", "cp949"]),
            ("ks_c_5601-1987", ["euc_kr", "cp949"]),
            ("gb2312", ["gb2312", "gb18030"]),
            ("big5", ["big5", "big5hkscs"]),
            ("iso-8859-8-i", ["iso8859-8"]),
            ("windows-874", ["cp874"]),
            ("koi8-r", ["koi8-r"]),
            ("x-klingon", []),
            ("base64", []),
            ("rot13", []),
            ("unicode_escape", []),
            ("undefined", []),
            ("", []),
            (None, []),
        ],
    )
    def test_maps_mail_labels_to_codecs(self, label: str | None, codecs: list[str]) -> None:
        assert codecs_for(label) == codecs


class TestDecodeBytes:
    @pytest.mark.parametrize(
        ("data", "charset", "text"),
        [
            ("Grüße".encode(), "utf-8", "Grüße"),
            ("Grüße".encode(), "us-ascii", "Grüße"),  # wrong label
            ("Grüße".encode(), None, "Grüße"),
            ("Grüße".encode("cp1252"), "utf-8", "Grüße"),  # wrong label, not UTF-8
            ("Grüße €".encode("cp1252"), "x-klingon", "Grüße €"),
            ("①番".encode("cp932"), "shift_jis", "①番"),
            (b"\xff\xfe\x00A", "utf-8", "ÿþA"),
            (b"a\x00b", "utf-8", "ab"),
            (b"\x81", "iso-8859-1", "\ufffd"),
        ],
    )
    def test_decodes_with_fallbacks(self, data: bytes, charset: str | None, text: str) -> None:
        assert decode_bytes(data, charset) == text

    @given(text=st.text(PRINTABLE), charset=st.sampled_from(["utf-8", "cp1252", "koi8-r", "cp932", "gb18030", "big5hkscs", "utf-16"]))
    def test_round_trips_text_in_its_declared_charset(self, text: str, charset: str) -> None:
        try:
            data = text.encode(charset)
        except UnicodeEncodeError:
            return
        if data.decode(charset) != text:
            return  # Python's own codec does not round-trip it (cp932 encodes '¬' as the byte of '￢')
        assert decode_bytes(data, charset) == text

    @given(
        data=st.binary(),
        charset=st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["utf-8", "utf-16", "utf-7", "cp932", "iso-2022-jp"])),
    )
    def test_any_bytes_and_label_give_clean_text(self, data: bytes, charset: str | None) -> None:
        text = decode_bytes(data, charset)
        assert "\x00" not in text
        text.encode("utf-8")


class TestClean:
    def test_surrogate_escaped_bytes_read_as_utf_8_then_windows_1252(self) -> None:
        assert clean("caf\udcc3\udca9 and na\udcefve\x00") == "café and naïve"

    def test_a_lone_surrogate_of_another_kind_is_replaced(self) -> None:
        assert clean("a\ud800b\udfff") == "a\ufffdb\ufffd"


class TestDecodeWords:
    @pytest.mark.parametrize(
        ("value", "text"),
        [
            ("=?utf-8?q?caf=C3=A9?= and   spaces  =?utf-8?b?w6k=?=", "café and   spaces  é"),
            ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
            ("=?utf-8?b?4oI=?=\r\n =?utf-8?b?rA==?=", "€"),  # one character split over two words
            ("=?ISO-8859-1?Q?J=FCrgen?= <j@example.de>", "Jürgen <j@example.de>"),
            ("=?utf-8*en?q?hello_world?=", "hello world"),
            ("=?x-klingon?q?caf=C3=A9?=", "café"),
            ("=?utf-8?q?a?= =?iso-8859-1?q?=E9?=", "aé"),
            ("plain =?utf-8?q?not closed", "plain =?utf-8?q?not closed"),
            ("=?utf-8?b?w6k?=", "é"),  # missing padding
        ],
    )
    def test_decodes(self, value: str, text: str) -> None:
        assert header_text(value) == text

    @given(text=st.text(PRINTABLE, max_size=200), charset=st.sampled_from(["utf-8", "iso-8859-1", "koi8-r", "shift_jis", "iso-2022-jp"]))
    def test_inverts_the_standard_library_header_encoder(self, text: str, charset: str) -> None:
        try:
            encoded = Header(text, charset).encode()
        except UnicodeEncodeError:
            return
        assert header_text(encoded) == text

    @given(text=st.text(PRINTABLE, max_size=200))
    def test_inverts_the_default_policy_folding(self, text: str) -> None:
        normalized = " ".join(text.split())
        folded = default_policy.header_factory("subject", normalized).fold(policy=default_policy)
        assert header_text(folded.split(":", 1)[1]) == normalized
