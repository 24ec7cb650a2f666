"""Response headers for the pages, and one fix for the page's own API calls.

- Every response: ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``.
- HTML pages (set by ``routes.render``): the Content-Security-Policy below, which forbids
  inline scripts and styles, frames and foreign form targets, plus ``Cache-Control: no-store``
  since pages carry a CSRF token.
- A 401 answered to the page's JavaScript (requests marked ``X-Requested-With: champipy-web``)
  loses its ``WWW-Authenticate: Basic`` challenge, otherwise the browser would pop up its own
  password dialog when a session ends; the script sends the user to the sign-in page instead.
  Every other client still gets the challenge.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WEB_CLIENT_HEADER = "X-Requested-With"
WEB_CLIENT_VALUE = "champipy-web"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: https:",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ]
)

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"))


class WebHeadersMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        marker = WEB_CLIENT_HEADER.lower().encode()
        from_page = any(k == marker and v.decode("latin-1") == WEB_CLIENT_VALUE for k, v in scope["headers"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _ALWAYS if k not in present]
                if from_page and message["status"] == 401:
                    headers = [(k, v) for k, v in headers if k.lower() != b"www-authenticate"]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
