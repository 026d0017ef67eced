"""Choosing the page language: ``?lang=zh`` / ``?lang=en`` (remembered in the browser), else the
``--language`` default, else the browser's own language.

Gradio picks its locale from ``navigator.language`` as soon as its scripts start, before any ``head``
content it injects itself, so a tiny ASGI middleware puts the choice into the page's HTML first.
(Gradio's Settings > Language also switches live, but leaves the tab titles in the old language.)
The choice is also put in a cookie so that messages made on the server use the same language.
"""
from __future__ import annotations

import json

SCRIPT = """<script>(function () {
  var key = "aigc-studio-lang", chosen = null;
  try {
    chosen = new URLSearchParams(window.location.search).get("lang");
    if (chosen) { window.localStorage.setItem(key, chosen); } else { chosen = window.localStorage.getItem(key); }
  } catch (e) {}
  chosen = chosen || %s;
  if (!chosen || chosen === "auto") return;
  var locale = chosen.indexOf("zh") === 0 ? "zh-CN" : "en";
  document.cookie = "aigc-lang=" + (locale === "en" ? "en" : "zh") + "; path=/; SameSite=Lax";  // for server messages
  Object.defineProperty(Navigator.prototype, "language", {get: function () { return locale; }, configurable: true});
  Object.defineProperty(Navigator.prototype, "languages", {get: function () { return [locale]; }, configurable: true});
})();</script>"""


class PageLanguageMiddleware:
    """Inserts the language script right after ``<head>`` in the HTML of the app's page."""

    def __init__(self, app, default: str = "auto"):
        self.app = app
        self.script = (SCRIPT % json.dumps(default)).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "GET" or scope.get("path", "").rstrip("/") != "":
            await self.app(scope, receive, send)
            return
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            headers = dict(start.get("headers", []))
            is_plain_html = b"text/html" in headers.get(b"content-type", b"") and b"content-encoding" not in headers
            if is_plain_html and b"<head>" in body:
                body = body.replace(b"<head>", b"<head>" + self.script, 1)
            new_headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            new_headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": new_headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)
