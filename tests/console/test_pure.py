"""Pure console functions, with hypothesis where they are hand-written: the SVG chart, CSV cells,
token comparison, redirects after sign-in, user names, the template editor's test model, stats shapes."""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from api_service.console import service
from api_service.console.charts import BOTTOM, HEIGHT, TOP, WIDTH, Series, bar_chart, layout, nice_ceiling
from api_service.console.docs import docs_csp
from api_service.console.pages.settings import inbound_dns
from api_service.console.pages.stats import breakdown, per_day
from api_service.console.pages.suppressions import FORMULA_START, csv_cell, parse_addresses, suppressions_csv
from api_service.console.pages.template_editor import parse_test_model
from api_service.console.pages.webhooks import parse_headers
from api_service.console.rendering import format_size
from api_service.console.views import Breakdown
from api_service.console.web import safe_next
from api_service.errors import PostmarkError
from api_service.webhooks import service as webhooks_service
from shared.schemas.stats import StatsSeries

SVG = "{http://www.w3.org/2000/svg}"


def days_from(count: int) -> list[date]:
    return [date(2026, 1, 1) + timedelta(days=i) for i in range(count)]


counts = st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=90)


class TestNiceCeiling:
    @given(st.integers(min_value=0, max_value=10**12))
    def test_is_the_smallest_1_2_5_step_at_or_above(self, value: int) -> None:
        top = nice_ceiling(value)
        assert top >= max(1, value)
        exponent = 10 ** int(math.log10(top))
        assert top // exponent in (1, 2, 5)
        assert top % exponent == 0
        below = [s * 10**e for e in range(13) for s in (1, 2, 5) if s * 10**e < top]
        assert all(b < value for b in below)


class TestBarChart:
    @given(counts, st.data())
    def test_bars_are_proportional_and_inside_the_plot(self, sends: list[int], data: st.DataObject) -> None:
        bounces = data.draw(st.lists(st.integers(min_value=0, max_value=10**7), min_size=len(sends), max_size=len(sends)))
        series = [Series("sends", "sent", sends), Series("bounces", "bounced", bounces)]
        top, bars = layout(days_from(len(sends)), series)
        plot_h = HEIGHT - TOP - BOTTOM
        assert len(bars) == 2 * len(sends)
        assert top >= max(sends + bounces)
        for bar in bars:
            assert bar.height == pytest.approx(plot_h * bar.value / top)
            assert bar.y + bar.height == pytest.approx(TOP + plot_h)
            assert bar.x >= 0
            assert bar.x + bar.width <= WIDTH + 1e-6

    @given(counts)
    def test_svg_is_well_formed_with_one_rect_per_value(self, sends: list[int]) -> None:
        svg = bar_chart(days_from(len(sends)), [Series("sends", "sent <&>", sends)], title='Sends "quoted" <b>')
        root = ET.fromstring(str(svg))  # noqa: S314 - our own output, parsed to check it is well formed
        rects = root.findall(f"{SVG}rect")
        assert [int(r.get("data-value", "-1")) for r in rects] == sends
        assert root.get("aria-label") == 'Sends "quoted" <b>'
        assert all(r.find(f"{SVG}title") is not None and "sent <&>" in (r.find(f"{SVG}title").text or "") for r in rects)  # type: ignore[union-attr]

    def test_refuses_mismatched_or_negative_series(self) -> None:
        with pytest.raises(ValueError, match="values for"):
            layout(days_from(2), [Series("sends", "sent", [1])])
        with pytest.raises(ValueError, match="negative"):
            layout(days_from(1), [Series("sends", "sent", [-1])])


class TestCsv:
    @given(st.lists(st.tuples(st.text(), st.text(), st.text(), st.text()), max_size=20))
    def test_round_trips_and_no_cell_starts_a_formula(self, rows: list[tuple[str, str, str, str]]) -> None:
        text = suppressions_csv(rows)
        parsed = list(csv.reader(io.StringIO(text, newline="")))
        assert parsed[0] == ["EmailAddress", "SuppressionReason", "Origin", "CreatedAt"]
        assert len(parsed) == len(rows) + 1
        for original, read in zip(rows, parsed[1:], strict=True):
            for cell, got in zip(original, read, strict=True):
                assert got == ("'" + cell if cell.startswith(FORMULA_START) else cell)
                assert not got.startswith(FORMULA_START)

    def test_formula_cell_is_quoted(self) -> None:
        assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
        assert csv_cell("ann@example.net") == "ann@example.net"


class TestTokensAndRedirects:
    @given(st.text(), st.text())
    def test_tokens_equal_only_when_identical_and_not_empty(self, a: str, b: str) -> None:
        assert service.tokens_equal(a, b) == (a == b and a != "")
        assert service.tokens_equal(a, None) is False

    @given(st.text())
    def test_next_is_always_a_console_path(self, value: str) -> None:
        target = safe_next(value)
        assert target.startswith("/console")
        assert not target.startswith("//")
        assert "\\" not in target

    def test_next_keeps_a_console_path(self) -> None:
        assert safe_next("/console/servers/3/activity?tag=a") == "/console/servers/3/activity?tag=a"
        assert safe_next("https://evil.example/console") == "/console/servers"


class TestUsers:
    @pytest.mark.parametrize("name", ["", "admin", "ADMIN", "a b", "-x", "x" * 65, "ünicode"])
    def test_refused_user_names(self, name: str) -> None:
        with pytest.raises(service.ConsoleUserError):
            service.clean_username(name)

    def test_user_name_is_lower_cased(self) -> None:
        assert service.clean_username(" Alice.Smith@Ops ") == "alice.smith@ops"

    def test_short_password_is_refused(self) -> None:
        with pytest.raises(service.ConsoleUserError, match="at least"):
            service.check_password("short")

    def test_password_hash_is_argon2id_and_verifies(self) -> None:
        hashed = service.hash_password("correct horse battery")
        assert hashed.startswith("$argon2id$")
        assert service.verify_password(hashed, "correct horse battery")
        assert not service.verify_password(hashed, "wrong")
        assert not service.verify_password("not a hash", "wrong")


class TestFormParsing:
    def test_addresses_split_on_commas_and_lines(self) -> None:
        assert parse_addresses("a@x.org, b@x.org\nc@x.org;;") == ["a@x.org", "b@x.org", "c@x.org"]

    def test_headers_one_per_line(self) -> None:
        assert [(h.Name, h.Value) for h in parse_headers("X-A: 1\n\nX-B:two: parts\n")] == [("X-A", "1"), ("X-B", "two: parts")]


class TestDocsCsp:
    def test_inline_script_allowed_by_its_hash_only(self) -> None:
        csp = docs_csp("<script src='/x.js'></script><script>const a = 1;</script>")
        script_src = csp.split("script-src ", 1)[1].split(";", 1)[0]
        # echo -n 'const a = 1;' | openssl dgst -sha256 -binary | base64
        assert script_src == "'self' 'sha256-zv0N0Hv6Zw9+C4JbNy52ozAX+zm+quOk2wp0IZa7md8='"


class TestWebhookSamples:
    @pytest.mark.parametrize("trigger", webhooks_service.TEST_TRIGGERS)
    def test_each_test_event_has_its_record_type(self, trigger: str) -> None:
        payload = webhooks_service.sample_payload(trigger=trigger, server_id=7, stream="outbound")
        assert payload.RecordType == trigger
        assert payload.ServerID == 7
        assert payload.MessageStream == "outbound"

    def test_unknown_trigger_is_refused(self) -> None:
        with pytest.raises(PostmarkError):
            webhooks_service.sample_payload(trigger="Open", server_id=7, stream="outbound")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


class TestTestModel:
    @given(json_values)
    def test_json_is_read_as_the_standard_library_reads_it(self, value: object) -> None:
        model, problem = parse_test_model(json.dumps(value))
        if isinstance(value, dict):
            assert (model, problem) == (value, None)
        else:
            assert model is None
            assert problem == 'The test model must be a JSON object, such as {"name": "Ann"}.'

    @given(st.text())
    def test_any_text_gives_a_model_or_a_reason_and_never_raises(self, text: str) -> None:
        model, problem = parse_test_model(text)
        if not text.strip():
            assert (model, problem) == (None, None)
        else:
            assert (model is None) != (problem is None)

    def test_invalid_json_says_where(self) -> None:
        assert parse_test_model('{"a": 1,\n "b": }') == (None, "The test model is not valid JSON: Expecting value (line 2, column 7).")
        assert parse_test_model("[" * 100_000) == (None, "The test model is nested too deeply.")


class TestStatsShapes:
    def test_per_day_fills_the_days_a_series_leaves_out(self) -> None:
        days = days_from(3)
        result = StatsSeries.model_validate({"Days": [{"Date": "2026-01-02", "Opens": 4, "Unique": 1}], "Opens": 4, "Unique": 1})
        assert per_day(result, "Opens", days) == [0, 4, 0]
        assert per_day(result, "Unique", days) == [0, 1, 0]

    def test_breakdown_is_largest_first_with_shares(self) -> None:
        result = StatsSeries.model_validate({"Days": [], "Desktop": 1, "Mobile": 3, "WebMail": 0})
        assert breakdown("By platform", result) == Breakdown(title="By platform", rows=[("Mobile", 3, 75.0), ("Desktop", 1, 25.0)])
        assert breakdown("Nothing", StatsSeries(Days=[])).rows == []


SIZE_UNITS = {"KB": 1024, "MB": 1024**2, "GB": 1024**3}


class TestFormatSize:
    @given(st.integers(min_value=0, max_value=2**50))
    @example(11008)  # 10.75 KB shows as 10.8: exactly half a tenth away, which floats put a hair over
    def test_reads_back_as_the_size_rounded_in_the_largest_unit_under_1024(self, value: int) -> None:
        shown = format_size(value)
        number, unit = shown.split(" ")
        if value < 1024:
            assert shown == (f"{value} byte" if value == 1 else f"{value} bytes")
            return
        scale = SIZE_UNITS[unit]
        assert abs(Fraction(number) * scale - value) <= Fraction(scale, 20)  # exact: half of the last digit
        assert float(number) >= 1
        assert float(number) < 1024 or unit == "GB"


class TestInboundDns:
    def test_a_host_name_is_the_mx_target_for_both_domains(self) -> None:
        dns = inbound_dns(inbound_domain="inbound.example.com", server_domain="replies.example.org", mx_host="mx.example.com.")
        assert [(r.kind, r.host, r.value, r.priority) for r in dns.records] == [
            ("MX", "inbound.example.com", "mx.example.com", 10),
            ("MX", "replies.example.org", "mx.example.com", 10),
        ]
        assert dns.warnings == []

    @pytest.mark.parametrize(("address", "kind"), [("203.0.113.10", "A"), ("2001:db8::25", "AAAA"), ("[2001:db8::25]", "AAAA")])
    def test_an_mx_never_names_an_address_so_one_is_named_for_it(self, address: str, kind: str) -> None:
        dns = inbound_dns(inbound_domain="inbound.example.com", server_domain="", mx_host=address)
        assert [(r.kind, r.host, r.value) for r in dns.records] == [
            ("MX", "inbound.example.com", "mx.inbound.example.com"),
            (kind, "mx.inbound.example.com", address.strip("[]")),
        ]

    def test_unreachable_hosts_and_unpublishable_domains_are_warned_about(self) -> None:
        assert len(inbound_dns(inbound_domain="inbound.example.com", server_domain="", mx_host="10.0.0.5").warnings) == 1
        assert len(inbound_dns(inbound_domain="inbound.example.com", server_domain="", mx_host="localhost").warnings) == 1
        assert len(inbound_dns(inbound_domain="inbound.localhost", server_domain="", mx_host="127.0.0.1").warnings) == 2
        assert inbound_dns(inbound_domain="inbound.example.com", server_domain="", mx_host="93.184.216.34").warnings == []
