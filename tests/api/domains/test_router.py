from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from api_service.domains.service import verify_dkim
from tests.factories import ACCOUNT, create_domain

pytestmark = pytest.mark.asyncio


class TestDomainsApi:
    async def test_create_list_edit_delete(self, client: httpx.AsyncClient) -> None:
        created = await create_domain(client, "Mail.Example.org")
        assert created["Name"] == "mail.example.org"
        listed = await client.get("/domains?count=10&offset=0", headers=ACCOUNT)
        assert [d["Name"] for d in listed.json()["Domains"]] == ["mail.example.org"]
        edited = await client.put(f"/domains/{created['ID']}", json={"ReturnPathDomain": "pm.mail.example.org"}, headers=ACCOUNT)
        assert edited.json()["ReturnPathDomain"] == "pm.mail.example.org"
        deleted = await client.delete(f"/domains/{created['ID']}", headers=ACCOUNT)
        assert deleted.json() == {"ErrorCode": 0, "Message": "Domain mail.example.org removed."}

    @pytest.mark.parametrize(("name", "code"), [("", 514), ("a" * 256 + ".com", 515), ("not a domain", 516)])
    async def test_invalid_name_returns_its_code(self, client: httpx.AsyncClient, name: str, code: int) -> None:
        response = await client.post("/domains", json={"Name": name}, headers=ACCOUNT)
        assert response.json()["ErrorCode"] == code

    async def test_duplicate_returns_512(self, client: httpx.AsyncClient) -> None:
        await create_domain(client, "example.org")
        assert (await client.post("/domains", json={"Name": "example.org"}, headers=ACCOUNT)).json()["ErrorCode"] == 512

    async def test_return_path_outside_domain_returns_511(self, client: httpx.AsyncClient) -> None:
        created = await create_domain(client, "example.org")
        response = await client.put(f"/domains/{created['ID']}", json={"ReturnPathDomain": "pm.other.org"}, headers=ACCOUNT)
        assert response.json()["ErrorCode"] == 511


class TestVerifyDkim:
    async def test_published_key_verifies_and_other_key_does_not(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        created = await create_domain(client, "example.org")
        assert created["DKIMHost"].endswith("._domainkey.example.org")
        assert created["DKIMTextValue"].startswith("k=rsa;p=")
        public = created["DKIMTextValue"].split("p=", 1)[1]

        async def published(name: str) -> list[str]:
            assert name == created["DKIMHost"]
            return [f"v=DKIM1; k=rsa; p={public[:20]} {public[20:]}"]

        async def other(name: str) -> list[str]:
            return ["v=DKIM1; k=rsa; p=MIIBIjANBgkq"]

        async with app.state.sessionmaker() as session:
            assert (await verify_dkim(session=session, domain_id=created["ID"], lookup=published)).dkim_verified is True
            assert (await verify_dkim(session=session, domain_id=created["ID"], lookup=other)).dkim_verified is False

    async def test_private_key_is_never_returned(self, client: httpx.AsyncClient) -> None:
        created = await create_domain(client, "example.org")
        got = await client.get(f"/domains/{created['ID']}", headers=ACCOUNT)
        assert "PRIVATE KEY" not in got.text
