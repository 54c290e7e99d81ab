from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import given
from hypothesis import strategies as st

from api_service.domains.dkim import new_selector
from api_service.domains.spf import covers, spf_record, terms

MECHANISMS = st.one_of(
    st.sampled_from(["a", "mx", "ptr", "a:mail.example.com", "mx:example.net", "exists:%{i}.spf.example.org"]),
    st.from_regex(r"include:[a-z]{1,10}\.example\.(com|net)", fullmatch=True),
    st.builds(lambda ip, bits: f"ip4:{IPv4Address(ip)}/{bits}", st.integers(0, 2**32 - 1), st.integers(8, 32)),
)
QUALIFIED = st.tuples(st.sampled_from(["", "+", "-", "~", "?"]), MECHANISMS).map("".join)
ALL = st.sampled_from(["~all", "-all", "?all", "+all", "all"])


def record(mechanisms: list[str], all_term: str) -> str:
    return " ".join(["v=spf1", *mechanisms, all_term])


class TestSpf:
    @given(st.lists(QUALIFIED, min_size=1, max_size=6, unique=True), st.lists(QUALIFIED, max_size=4), ALL, ALL, st.randoms())
    def test_a_record_with_every_wanted_mechanism_covers_it(
        self, wanted: list[str], extra: list[str], wanted_all: str, published_all: str, random: object
    ) -> None:
        published = wanted + extra
        random.shuffle(published)  # type: ignore[attr-defined]
        assert covers(["other=1", record([m.upper() for m in published], published_all)], record(wanted, wanted_all))

    @given(st.lists(QUALIFIED, min_size=1, max_size=6), ALL)
    def test_a_missing_mechanism_does_not_cover(self, wanted: list[str], all_term: str) -> None:
        needed = {t for t in terms(record(wanted, all_term)) if t.lstrip("-~?") != "all"}
        for missing in needed:
            assert not covers([record(sorted(needed - {missing}), all_term)], record(wanted, all_term))

    def test_plus_is_the_default_qualifier_and_a_host_address_is_a_slash_32(self) -> None:
        assert covers(["v=spf1 +a ip4:192.0.2.1 -all"], "v=spf1 a ip4:192.0.2.1/32 ~all")
        assert not covers(["v=spf1 -a ~all"], "v=spf1 a ~all")

    def test_none_or_two_spf_records_cover_nothing(self) -> None:
        assert spf_record(["v=spf10 a", "google-site-verification=x"]) is None
        assert not covers(["v=spf1 a ~all", "v=spf1 a ~all"], "v=spf1 a ~all")
        assert not covers([], "v=spf1 ~all")


class TestSelectors:
    def test_a_taken_selector_gets_a_suffix(self) -> None:
        assert new_selector("20261125") == "pg20261125"
        assert new_selector("20261125", taken={"pg20261125"}) == "pg20261125-2"
        assert new_selector("20261125", taken={"pg20261125", "pg20261125-2", ""}) == "pg20261125-3"

    @given(st.sets(st.from_regex(r"pg20261125(-[2-9])?", fullmatch=True)))
    def test_the_new_selector_is_never_taken(self, taken: set[str]) -> None:
        assert new_selector("20261125", taken=taken) not in taken
