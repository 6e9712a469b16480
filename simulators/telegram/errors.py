"""Bot API replies: errors in the real server's envelope and wording, and described successes.

The envelope is ``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}``
(``parameters`` only when there are some). Descriptions start with the prefix the real server
puts in front of every message of that code ("Bad Request: ", "Forbidden: ", ...); the texts we
know from the server's source (tdlib/telegram-bot-api ``Client.cpp``) are spelled here once.
"""

from __future__ import annotations

from typing import Any, NamedTuple

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
TERMINATED = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
)


class Described(NamedTuple):
    """A successful result that the real server sends with a ``description`` ("Webhook was set")."""

    result: Any
    description: str


class ApiError(Exception):
    """One failed Bot API call: the HTTP status, the description and the optional parameters.

    ``raw_body`` replaces the JSON envelope for replies that are not JSON on the real service
    (the 502 page comes from nginx in front of the Bot API, not from the Bot API itself)."""

    def __init__(
        self,
        code: int,
        description: str,
        parameters: dict[str, Any] | None = None,
        *,
        raw_body: str | None = None,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters
        self.raw_body = raw_body

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(message: str) -> ApiError:
    return ApiError(400, f"Bad Request: {message}")


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized")


def blocked() -> ApiError:
    return ApiError(403, "Forbidden: bot was blocked by the user")


def chat_not_found() -> ApiError:
    return bad_request("chat not found")


def too_many_requests(retry_after: int) -> ApiError:
    retry_after = max(1, int(retry_after))
    return ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})


def conflict(description: str) -> ApiError:
    return ApiError(409, description)


def internal_error() -> ApiError:
    return ApiError(500, "Internal Server Error")


def bad_gateway() -> ApiError:
    return ApiError(502, "Bad Gateway", raw_body=NGINX_502)
