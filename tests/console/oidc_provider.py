"""A tiny OpenID Connect provider for the tests, over real HTTP on a loopback port: discovery, JWKS,
an authorize endpoint that signs in a chosen user at once (no login page), and a token endpoint
that checks the client's secret, the code's redirect URI and the PKCE verifier before it returns
an RS256 ID token signed with `joserfc`."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "postgate-console"
CLIENT_SECRET = "test-client-secret"


@dataclass
class Provider:
    issuer: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"}))
    claims: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tamper: str = ""  # "nonce", "aud" or "key": the next ID token is wrong in that way
    tokens_issued: int = 0

    def id_token(self, code: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "subject-1",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": code["nonce"],
            **self.claims,
        }
        key = self.key
        if self.tamper == "nonce":
            claims["nonce"] = "another"
        elif self.tamper == "aud":
            claims["aud"] = "another-client"
        elif self.tamper == "key":
            key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                self._json(
                    200,
                    {
                        "issuer": provider.issuer,
                        "authorization_endpoint": f"{provider.issuer}/authorize",
                        "token_endpoint": f"{provider.issuer}/token",
                        "jwks_uri": f"{provider.issuer}/jwks",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "code_challenge_methods_supported": ["S256"],
                    },
                )
            elif url.path == "/jwks":
                self._json(200, {"keys": [provider.key.as_dict(private=False)]})
            elif url.path == "/authorize":
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                ok = q.get("client_id") == CLIENT_ID and q.get("response_type") == "code" and q.get("code_challenge_method") == "S256"
                if not ok or "openid" not in q.get("scope", "").split():
                    self._json(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(16)
                provider.codes[code] = q
                self.send_response(302)
                self.send_header("Location", f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")
                self.end_headers()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/token":
                self._json(404, {"error": "not_found"})
                return
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()).items()}
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {basic}":
                self._json(401, {"error": "invalid_client"})
                return
            code = provider.codes.pop(form.get("code", ""), None)
            if code is None or form.get("redirect_uri") != code["redirect_uri"]:
                self._json(400, {"error": "invalid_grant"})
                return
            digest = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
            if digest != code["code_challenge"]:
                self._json(400, {"error": "invalid_grant", "error_description": "PKCE verifier does not match"})
                return
            provider.tokens_issued += 1
            self._json(200, {"access_token": "at", "token_type": "Bearer", "id_token": provider.id_token(code)})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running_provider() -> Iterator[Provider]:
    provider = Provider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
