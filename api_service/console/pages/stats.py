"""A server's statistics: a bar chart per day, the day-by-day table, and opens and clicks by client."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api_service.console.charts import Series, bar_chart
from api_service.console.rendering import PREFIX, render
from api_service.console.views import Breakdown
from api_service.console.web import ServerPage, Signed
from api_service.deps import Session, TransactionalRoute
from api_service.stats import service as stats_service
from shared.schemas.stats import StatsSeries

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

STATS_DAYS = (7, 30, 90)


def per_day(result: StatsSeries, key: str, days: list[date]) -> list[int]:
    """One key of a stats-service series, one number per day (Postmark's series leave out zeros)."""
    by_day = {d["Date"]: int(d.get(key, 0)) for d in result.Days}
    return [by_day.get(day.isoformat(), 0) for day in days]


def breakdown(title: str, result: StatsSeries) -> Breakdown:
    totals = {str(k): int(v) for k, v in (result.model_extra or {}).items()}
    whole = sum(totals.values())
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return Breakdown(title=title, rows=[(name, n, 100 * n / whole) for name, n in ordered if n])


def span_of(request: Request) -> int:
    try:
        span = int(request.query_params.get("days", "30"))
    except ValueError:
        span = 30
    return span if span in STATS_DAYS else 30


@router.get("/servers/{server_id}/stats")
async def stats(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    span = span_of(request)
    # The stats service counts US Eastern days, as Postmark's stats do.
    zone = ZoneInfo(stats_service.TIME_ZONE)
    today = datetime.now(zone).date()
    days = [today - timedelta(days=span - 1 - i) for i in range(span)]
    machines = request.query_params.get("machines") == "1"  # beyond Postmark: people only unless asked
    f = stats_service.StatsFilter(server_id=server.id, from_date=datetime.combine(days[0], time.min, zone), include_machines=machines)
    overview = await stats_service.overview(session=session, f=f)
    opens = await stats_service.opens(session=session, f=f)
    clicks = await stats_service.clicks(session=session, f=f)
    series = [
        Series(key="sends", label="sent", values=per_day(await stats_service.sends(session=session, f=f), "Sent", days)),
        Series(key="bounces", label="bounced", values=per_day(await stats_service.bounced(session=session, f=f), "Bounced", days)),
        Series(key="opens", label="opened", values=per_day(opens, "Opens", days)),
        Series(key="clicks", label="clicked", values=per_day(clicks, "Clicks", days)),
    ]
    columns = [
        *[(s.label.capitalize(), s.values) for s in series[:3]],
        ("Unique opens", per_day(opens, "Unique", days)),
        ("Clicked", series[3].values),
        ("Unique link clicks", per_day(clicks, "Unique", days)),
    ]
    return render(
        request,
        "stats.html",
        {
            "identity": identity,
            "server": server,
            "section": "stats",
            "span": span,
            "spans": STATS_DAYS,
            "machines": machines,
            "chart": bar_chart(days, series, title=f"Messages sent, bounced, opened and clicked per day, last {span} days"),
            "series": series,
            "columns": [name for name, _ in columns],
            "rows": [(d, [values[i] for _, values in columns]) for i, d in reversed(list(enumerate(days)))],
            "overview": overview,
            "breakdowns": [
                breakdown("Opens by platform", await stats_service.open_platforms(session=session, f=f)),
                breakdown("Opens by email client", await stats_service.email_clients(session=session, f=f)),
                breakdown("Clicks by platform", await stats_service.click_platforms(session=session, f=f)),
            ],
        },
    )
