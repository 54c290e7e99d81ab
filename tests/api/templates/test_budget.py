"""Rendering's work budget and where heavy template work runs (issue 22 row 2).

The attack: a 1.2 MB `/templates/validate` whose loop wraps thousands of tags, with a test model of a long list,
froze `/health` for 6.2 s, because only loop iterations were counted and the work ran on the event loop.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from api_service.errors import PostmarkError
from api_service.templates.budget import Budget, run_budgeted
from api_service.templates.mustachio import MAX_ERRORS, MAX_RENDER_WORK, MAX_TAGS, TemplateRenderError, compile_template, validate
from api_service.templates.mustachio_syntax import _locate, _parse
from api_service.templates.rendering import TemplateParts, render_template
from shared.constants import ErrorCode
from tests.factories import ServerHandle, create_server, create_template, sending_server

TAGS_IN_LOOP = MAX_TAGS - 10
HEAVY = "{{#each a}}" + "{{ x }}" * TAGS_IN_LOOP + "{{/each}}"  # about 140 KB, within the tag cap
HEAVY_MODEL: dict[str, Any] = {"a": [{}] * 500}  # 10 million nodes to render; 500 iterations only


class TestWorkPerIteration:
    def test_a_loop_around_many_tags_stops_at_the_work_budget(self) -> None:
        assert validate(HEAVY) == []
        with pytest.raises(TemplateRenderError, match="renders more than"):
            compile_template(HEAVY).render(HEAVY_MODEL, html=True)

    def test_long_dotted_paths_count_their_steps(self) -> None:
        template = compile_template("{{#each a}}{{ " + ".".join(["b"] * 1000) + " }}{{/each}}")
        with pytest.raises(TemplateRenderError, match="renders more than"):
            template.render({"a": [{}] * 5000}, html=False)

    def test_more_tags_than_the_cap_is_a_syntax_error(self) -> None:
        errors = validate("{{ x }}" * (MAX_TAGS + 1))
        assert [e.message for e in errors] == [
            f"The template has more than {MAX_TAGS:,} tags: split it, or move repeated content into a loop."
        ]
        assert (errors[0].line, errors[0].character) == (1, MAX_TAGS * 7 + 1)
        assert validate("{{ x }}" * MAX_TAGS) == []

    def test_a_send_over_the_work_budget_is_1122(self) -> None:
        with pytest.raises(PostmarkError) as caught:
            render_template(TemplateParts(subject="s", html_body=HEAVY, text_body=None), None, HEAVY_MODEL)
        assert caught.value.error_code == ErrorCode.TEMPLATE_FIELD_INVALID
        assert "renders more than" in caught.value.message


def naive_position(source: str, index: int) -> tuple[int, int]:
    """Line and UTF-16 column of `index`, computed from scratch (what `_locate` did per error before)."""
    line_start = source.rfind("\n", 0, index) + 1
    return source.count("\n", 0, index) + 1, len(source[line_start:index].encode("utf-16-le", "surrogatepass")) // 2 + 1


class TestErrorPositions:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(["{{", "}}", "{", "\n", "x", "\U0001f600", "{{#a}}", "{{/b}}", " "]), max_size=60).map("".join))
    def test_one_pass_positions_are_the_positions(self, source: str) -> None:
        parsed = _parse(source)
        expected = [naive_position(source, index) for index, _ in sorted(parsed.errors, key=lambda e: e[0])[:MAX_ERRORS]]
        assert [(e.line, e.character) for e in _locate(source, parsed.errors)] == expected


class TestDeadline:
    def test_past_the_deadline_a_heavy_rendering_stops(self) -> None:
        late = Budget(deadline=time.monotonic() - 1)
        with pytest.raises(TemplateRenderError, match="took longer than"):
            compile_template("{{#each a}}.{{/each}}").render({"a": [0] * 100_000}, html=False, budget=late)

    def test_a_small_rendering_never_looks_at_the_clock(self) -> None:
        late = Budget(deadline=time.monotonic() - 1)
        assert compile_template("{{#each a}}{{ . }}{{/each}}").render({"a": [1, 2]}, html=False, budget=late) == "12"


class TestWhereItRuns:
    @pytest.mark.asyncio
    async def test_a_small_step_stays_on_the_loop_and_a_large_one_goes_to_a_thread(self) -> None:
        threads: list[int] = []

        def step(model: dict[str, Any], budget: Budget) -> str:
            threads.append(threading.get_ident())
            return compile_template("{{#each a}}{{ . }}{{/each}}").render(model, html=False, budget=budget)

        assert await run_budgeted(lambda budget: step({"a": [1, 2]}, budget)) == "12"
        assert threads == [threading.get_ident()]
        threads.clear()
        big = {"a": list(range(50_000))}
        assert await run_budgeted(lambda budget: step(big, budget)) == "".join(map(str, range(50_000)))
        assert threads[0] == threading.get_ident()  # the cut-short attempt on the loop
        assert threads[-1] != threading.get_ident()  # then the whole step again, in a thread


# --- the budget never changes what renders under it -------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", ".", "../a", "a.b"])
LEAF = st.one_of(
    st.text(alphabet="xy<& \n", max_size=4),
    NAMES.map(lambda n: "{{ " + n + " }}"),
    NAMES.map(lambda n: "{{{ " + n + " }}}"),
)


def _blocks(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    body = st.lists(inner, max_size=4).map("".join)
    name = st.sampled_from(["a", "b", "c"])
    return st.one_of(
        st.tuples(name, body).map(lambda t: f"{{{{#each {t[0]}}}}}{t[1]}{{{{/each}}}}"),
        st.tuples(name, body).map(lambda t: f"{{{{#{t[0]}}}}}{t[1]}{{{{/{t[0]}}}}}"),
        st.tuples(name, body).map(lambda t: f"{{{{^{t[0]}}}}}{t[1]}{{{{/{t[0]}}}}}"),
    )


TEMPLATES = st.lists(st.recursive(LEAF, _blocks, max_leaves=12), max_size=5).map("".join)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(alphabet="xy<", max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    max_leaves=15,
)
MODELS = st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES, max_size=3)


def unlimited() -> Budget:
    """Rendering without the budget: no work or output limit, no deadline."""
    return Budget(max_work=sys.maxsize, max_chars=sys.maxsize)


def outcome(source: str, model: dict[str, Any], budget: Budget, *, html: bool) -> str:
    try:
        return compile_template(source).render(model, html=html, strict=True, budget=budget)
    except TemplateRenderError as exc:
        return f"error: {exc}"


class TestBudgetChangesNothingUnderIt:
    @settings(max_examples=300, deadline=None)
    @given(source=TEMPLATES, model=MODELS, html=st.booleans())
    def test_random_templates_render_the_same_with_and_without_the_budget(self, source: str, model: dict[str, Any], html: bool) -> None:
        assume(validate(source) == [])  # `{{#a}}{{^a}}` inside another `{{#a}}` is Mustachio's "else", and can leave a close over
        unbudgeted = outcome(source, model, unlimited(), html=html)
        assert outcome(source, model, Budget(), html=html) == unbudgeted
        assert outcome(source, model, Budget(deadline=time.monotonic() + 60), html=html) == unbudgeted
        assert outcome(source, model, Budget.on_the_loop(), html=html) == unbudgeted

    def test_just_under_the_budget_renders_and_one_more_element_does_not(self) -> None:
        template = compile_template("{{#each a}}.{{/each}}")  # 1 node + per element: the element and its text
        fits = (MAX_RENDER_WORK - 1) // 2
        assert template.render({"a": [0] * fits}, html=False) == "." * fits
        assert template.render({"a": [0] * (fits + 1)}, html=False, budget=unlimited()) == "." * (fits + 1)
        with pytest.raises(TemplateRenderError):
            template.render({"a": [0] * (fits + 1)}, html=False)


# --- over HTTP: the attacker's requests, with /health probed meanwhile ---------------------------------------


async def while_health_answers(client: httpx.AsyncClient, heavy: Awaitable[httpx.Response]) -> httpx.Response:
    """Run `heavy` while probing `/health`: every probe must answer within a second (the one timing bound allowed).

    The pause between probes is timed with it, so a loop blocked between two probes is caught too.
    """
    task = asyncio.ensure_future(heavy)
    probes = 0
    while not task.done():
        started = time.monotonic()
        health = await client.get("/health")
        assert health.status_code == 200
        await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"/health and a 20 ms pause took {elapsed:.1f} s while the heavy request ran"
        probes += 1
    assert probes >= 1
    return await task


@pytest.mark.asyncio
class TestOverHttp:
    async def test_validate_with_huge_work_per_iteration_is_bounded_and_health_answers(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client)
        body = {"Subject": "Hi", "HtmlBody": HEAVY, "TextBody": "{{#each a}}{{ x }}{{/each}}", "TestRenderModel": HEAVY_MODEL}
        response = await while_health_answers(client, client.post("/templates/validate", json=body, headers=server.headers))
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["AllContentIsValid"] is False
        assert result["HtmlBody"]["ContentIsValid"] is False
        # Over the work budget; on a loaded machine the deadline may come first. Either way, a bounded answer.
        assert "Rendering stopped" in result["HtmlBody"]["ValidationErrors"][0]["Message"]
        assert result["TextBody"] == {"ContentIsValid": True, "ValidationErrors": [], "RenderedContent": ""}

    async def test_a_send_with_huge_work_per_iteration_is_1122_and_health_answers(self, client: httpx.AsyncClient) -> None:
        server: ServerHandle = await sending_server(client)
        created = await create_template(client, server, Alias="heavy", HtmlBody=HEAVY)
        send = {"From": "sender@example.com", "To": "ann@example.net", "TemplateId": created["TemplateId"], "TemplateModel": HEAVY_MODEL}
        response = await while_health_answers(client, client.post("/email/withTemplate", json=send, headers=server.headers))
        assert response.status_code == 422, response.text
        assert response.json()["ErrorCode"] == ErrorCode.TEMPLATE_FIELD_INVALID
        assert "Rendering stopped" in response.json()["Message"]

    async def test_a_batch_of_heavy_sends_fails_each_and_health_answers(self, client: httpx.AsyncClient) -> None:
        server: ServerHandle = await sending_server(client)
        created = await create_template(client, server, Alias="heavy", HtmlBody=HEAVY)
        send = {"From": "sender@example.com", "To": "ann@example.net", "TemplateId": created["TemplateId"], "TemplateModel": HEAVY_MODEL}
        light = send | {"TemplateModel": {"a": []}}
        batch = {"Messages": [send, light, send]}
        response = await while_health_answers(client, client.post("/email/batchWithTemplates", json=batch, headers=server.headers))
        assert response.status_code == 200, response.text
        assert [r["ErrorCode"] for r in response.json()] == [ErrorCode.TEMPLATE_FIELD_INVALID, 0, ErrorCode.TEMPLATE_FIELD_INVALID]
