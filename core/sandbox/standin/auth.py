"""Server-side auth as Stream checks it: ?api_key= plus an HS256 JWT {"server": true}."""

from __future__ import annotations

from collections.abc import Mapping

import jwt

from slashbots.sandbox.standin.errors import StreamError
from slashbots.sandbox.standin.values import Json


class ServerAuth:
    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self.api_secret = api_secret

    def check(self, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        """Raise Stream's 401 unless the request carries the app's key and a server token."""
        if query.get("api_key") != self.api_key:
            raise StreamError(401, "api_key not found or not valid")
        if headers.get("stream-auth-type", "jwt") != "jwt":
            raise StreamError(401, "stream-auth-type must be jwt")
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token:
            raise StreamError(401, "JWTAuth error: token is not provided")
        try:
            claims = self.claims(token)
        except jwt.PyJWTError:
            raise StreamError(401, "JWTAuth error: signature is not valid. Make sure the token is created "
                                   f'using the secret for API key "{self.api_key}"')
        if claims.get("server") is not True:
            raise StreamError(401, "JWTAuth error: this endpoint needs a server-side token")

    def claims(self, token: str) -> Json:
        """The token's claims, once its signature is verified with the app secret."""
        claims: Json = jwt.decode(token, self.api_secret, algorithms=["HS256"])
        return claims
