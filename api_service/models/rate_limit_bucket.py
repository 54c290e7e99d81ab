from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base


class RateLimitBucket(Base):
    """One token bucket of the API rate limits (GCRA state, see `core.gcra`), shared by every API process.

    UNLOGGED: no WAL, so a hot row costs little; after a crash, or on a promoted standby, the
    table is empty and every bucket starts full again, which is acceptable for a rate limit.
    """

    __tablename__ = "rate_limit_buckets"
    __table_args__ = ({"prefixes": ["UNLOGGED"]},)

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    tat_us: Mapped[int] = mapped_column(BigInteger, doc="Theoretical arrival time, microseconds since the epoch")
    granted: Mapped[int] = mapped_column(Integer, doc="Tokens the last take granted")
    at_us: Mapped[int] = mapped_column(BigInteger, doc="Database clock at the last take, microseconds since the epoch")
