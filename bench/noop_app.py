"""The REST ceiling: FastAPI with the same request model and server settings, doing nothing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI

from shared.schemas.email import EmailRequest
from shared.schemas.templates import TemplatedEmailRequest


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/email")
    async def send(message: Annotated[EmailRequest, Body()]) -> dict[str, Any]:
        return {"ErrorCode": 0, "Message": "OK", "To": message.To, "MessageID": "00000000-0000-0000-0000-000000000000"}

    @app.post("/email/batch")
    async def batch(messages: Annotated[list[EmailRequest], Body()]) -> list[dict[str, Any]]:
        return [{"ErrorCode": 0, "Message": "OK", "To": m.To} for m in messages]

    @app.post("/email/withTemplate")
    async def send_with_template(message: Annotated[TemplatedEmailRequest, Body()]) -> dict[str, Any]:
        return {"ErrorCode": 0, "Message": "OK", "To": message.To, "MessageID": "00000000-0000-0000-0000-000000000000"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
