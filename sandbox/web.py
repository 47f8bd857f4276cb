"""The sandbox page at /sandbox: chat with the bot as any user, watch the groups, inject faults.

Only mounted in sandbox mode (SANDBOX=1, on loopback unless SANDBOX_ALLOW_REMOTE). Updates from the
page enter through the same `POST /telegram/webhook` Telegram uses, secret included (an in-process
ASGI call), so the sandbox exercises every check the real path has; a method the webhook answers inline is then executed
against the emulated Bot API, as Telegram would.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.state import AppState, app_state
from api.webhook import SECRET_HEADER
from core.phone import normalize_phone
from core.settings import Settings
from db import messages
from sandbox import logins, payments
from sandbox.botapi import create_app as create_fake_botapi
from sandbox.botapi import normalize_params
from sandbox.entities import MarkupError
from sandbox.sandbox_botapi import ChatStore, SandboxBotAPI
from sandbox.seed import seed_sandbox
from sandbox.updates import (
    BadInput,
    callback_update,
    caption_content,
    contact_content,
    inline_callbacks,
    media_content,
    message_update,
    sender,
    text_content,
)
from sandbox.views import chat_view, network_view
from userbot.factory import fake_network
from userbot.fake import FakeTelegram

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = {"page.js": "text/javascript", "page.css": "text/css"}
MAX_JSON_BYTES = 64 * 1024
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # a bit over Telegram's 20 MB, so the bot's own limit can be tried
_SNIFF = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG", "image/png"), (b"GIF8", "image/gif"),
          (b"RIFF", "image/webp"), (b"\x1aE\xdf\xa3", "video/webm"))


def _content_type(data: bytes) -> str:
    for magic, mime in _SNIFF:
        if data.startswith(magic):
            return mime
    return "video/mp4" if data[4:8] == b"ftyp" else "application/octet-stream"


NO_SECRET = ("WEBHOOK_SECRET is not set: the sandbox delivers updates through the webhook, which refuses them "
             "without it (make run sets one)")


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


class Sandbox:
    """The page's routes and the emulator state they share with the bot (the Bot API emulator)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.api = SandboxBotAPI()
        self._store: ChatStore | None = None
        self._net: FakeTelegram | None = None

    async def start(self, state: AppState) -> None:
        """At start-up: seed the network and load the chats a previous run left in Redis."""
        self._net = fake_network(self.settings, state.redis)
        await seed_sandbox(self._net)
        self._store = ChatStore(state.redis, self.settings.redis_prefix)
        restored = await self._store.restore(self.api)
        log.info("sandbox ready: %d chat(s) restored", restored)

    async def persist(self) -> None:
        if self._store is not None:
            await self._store.persist(self.api)

    @property
    def net(self) -> FakeTelegram:
        if self._net is None:
            raise RuntimeError("sandbox not started")
        return self._net

    def routes(self) -> list[BaseRoute]:
        api = "/sandbox/api"
        return [
            # No bot token: the bot talks to this Bot API emulator (BOT_API_BASE points here).
            Mount("/sandbox/botapi", app=self._persisting(create_fake_botapi(self.api))),
            Route("/sandbox", self.page, methods=["GET"]),
            Route("/sandbox/", lambda r: RedirectResponse("/sandbox"), methods=["GET"]),
            Route("/sandbox/static/{name}", self.static, methods=["GET"]),
            Route(f"{api}/config", self.config, methods=["GET"]),
            Route(f"{api}/chat/{{chat_id:int}}", self.chat, methods=["GET"]),
            Route(f"{api}/file/{{file_id}}", self.file, methods=["GET"]),
            Route(f"{api}/media/{{media_id:int}}", self.posted_media, methods=["GET"]),
            Route(f"{api}/network", self.network, methods=["GET"]),
            Route(f"{api}/send", self.send, methods=["POST"]),
            Route(f"{api}/media", self.media, methods=["POST"]),
            Route(f"{api}/contact", self.contact, methods=["POST"]),
            Route(f"{api}/press", self.press, methods=["POST"]),
            Route(f"{api}/fault", self.fault, methods=["POST"]),
            Route(f"{api}/account", self.account, methods=["POST"]),
            Route(f"{api}/pay", self.pay, methods=["POST"]),
            Route(f"{api}/renew", self.renew, methods=["POST"]),
        ]

    def _persisting(self, inner: ASGIApp) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await inner(scope, receive, send)
            await self.persist()

        return app

    # ---- the page ---------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        return FileResponse(HERE / "page.html", media_type="text/html")

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response(status_code=404)
        return FileResponse(HERE / name, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    async def config(self, request: Request) -> JSONResponse:
        settings = self.settings
        return JSONResponse({
            "admin_id": min(settings.admin_ids) if settings.admin_ids else None,
            "webhook_ready": settings.webhook_secret is not None,
            "min_interval_minutes": settings.min_interval_minutes,
            "languages": ["uz", "ru", "en"],
            "default_language": settings.default_language,
        })

    async def chat(self, request: Request) -> JSONResponse:
        return JSONResponse(chat_view(self.api, int(request.path_params["chat_id"])))

    async def file(self, request: Request) -> Response:
        data = self.api.file_data(request.path_params["file_id"])
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type=_content_type(data), headers={"Cache-Control": "max-age=86400"})

    async def posted_media(self, request: Request) -> Response:
        """A broadcast's photo or video, as the groups panel shows it under the post."""
        async with app_state(request).pool.connection() as conn:
            media = await messages.get_media(conn, int(request.path_params["media_id"]))
        if media is None:
            return Response(status_code=404)
        return Response(media.data, media_type=_content_type(media.data), headers={"Cache-Control": "max-age=86400"})

    async def network(self, request: Request) -> JSONResponse:
        """`?user=<id>`: the page's user, the only one whose login codes it shows."""
        state = app_state(request)
        raw = request.query_params.get("user", "")
        user_id = int(raw) if raw.isdigit() else None
        view = await network_view(self.net, state.pool, state.redis, self.settings.redis_prefix, user_id)
        return JSONResponse(view)

    # ---- acting as the user -----------------------------------------------------------------------

    async def _body(self, request: Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BadInput("request too large")
        raw = await request.body()
        if len(raw) > limit:
            raise BadInput("request too large")
        try:
            body = json.loads(raw)
        except ValueError:
            raise BadInput("not JSON") from None
        if not isinstance(body, dict):
            raise BadInput("not a JSON object")
        return body

    async def _next_update_id(self, state: AppState) -> int:
        # Kept in Redis: the webhook de-duplicates update ids for 24 h, across web restarts too.
        return int(await state.redis.incr(f"{self.settings.redis_prefix}sandbox:update-id"))

    async def _feed(self, request: Request, update: dict[str, Any]) -> JSONResponse:
        """Deliver through the real webhook, then do what Telegram does with an inline reply."""
        secret = self.settings.webhook_secret
        if secret is None:
            return _error(NO_SECRET, 503)
        return JSONResponse(await self._deliver(request, update, secret.get_secret_value()))

    async def _deliver(self, request: Request, update: dict[str, Any], secret: str) -> dict[str, Any]:
        transport = httpx.ASGITransport(app=request.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.internal") as client:
            response = await client.post(
                "/telegram/webhook", json=update, headers={SECRET_HEADER: secret}, timeout=60
            )
        reply_error = None
        if response.status_code == 200:
            body = response.json()
            if isinstance(body, dict) and "method" in body:
                params = normalize_params({k: v for k, v in body.items() if k != "method"}, {})
                status, answer = self.api.handle(self.settings.bot_token_value(), str(body["method"]), params, {})
                if status != 200:
                    reply_error = answer.get("description")
        await self.persist()
        return {"ok": response.status_code == 200, "webhook_status": response.status_code,
                "update_id": update["update_id"], "reply_error": reply_error}

    async def _incoming(self, request: Request, user: dict[str, Any], content: dict[str, Any]) -> JSONResponse:
        state = app_state(request)
        message = self.api.add_incoming(user["id"], user, content)
        return await self._feed(request, message_update(await self._next_update_id(state), message))

    async def send(self, request: Request) -> JSONResponse:
        try:
            body = await self._body(request)
            user = sender(body.get("user"))
            content = text_content(str(body.get("text") or ""))
        except (BadInput, MarkupError) as e:
            return _error(str(e))
        redis, prefix, text = app_state(request).redis, self.settings.redis_prefix, str(content.get("text") or "")
        await logins.expire_sent_codes(self.net, redis, prefix, user["id"], text)  # before the bot reads it
        await logins.remember_phone(redis, prefix, user["id"], text)
        return await self._incoming(request, user, content)

    async def media(self, request: Request) -> JSONResponse:
        try:
            body = await self._body(request, limit=MAX_UPLOAD_BYTES * 4 // 3 + MAX_JSON_BYTES)
            user = sender(body.get("user"))
            kind = str(body.get("kind") or "")
            try:
                data = base64.b64decode(str(body.get("data") or ""), validate=True)
            except (binascii.Error, ValueError):
                raise BadInput("data must be base64") from None
            if not data:
                raise BadInput("the file is empty")
            file_id = f"SB{kind[:2].upper()}{secrets.token_hex(12)}"
            content = media_content(kind, file_id, f"SBU{secrets.token_hex(6)}", len(data),
                                    str(body.get("file_name") or ""))
            content |= caption_content(str(body.get("caption") or ""))
        except (BadInput, MarkupError) as e:
            return _error(str(e))
        self.api.add_file(file_id, data)
        return await self._incoming(request, user, content)

    async def contact(self, request: Request) -> JSONResponse:
        try:
            body = await self._body(request)
            user = sender(body.get("user"))
            content = contact_content(user, str(body.get("phone") or ""))
        except BadInput as e:
            return _error(str(e))
        await logins.remember_phone(app_state(request).redis, self.settings.redis_prefix, user["id"],
                                    str(body.get("phone") or ""))
        return await self._incoming(request, user, content)

    async def press(self, request: Request) -> JSONResponse:
        try:
            body = await self._body(request)
            user = sender(body.get("user"))
            message_id = int(body.get("message_id"))  # type: ignore[arg-type]
        except (BadInput, TypeError, ValueError) as e:
            return _error(str(e) or "message_id must be a number")
        data = str(body.get("data") or "")
        message = self.api.message(user["id"], message_id)
        if message is None:
            return _error("that message is gone", 404)
        # A Telegram client can only press buttons that are on the message.
        if data not in inline_callbacks(message):
            return _error("no such button on that message")
        callback_id = f"sb{secrets.token_hex(8)}"
        self.api.expect_callback(callback_id, user["id"])
        update = callback_update(await self._next_update_id(app_state(request)), callback_id, user, message, data)
        return await self._feed(request, update)

    # ---- paying with Stars (sandbox/payments.py) ----------------------------------------------------

    async def pay(self, request: Request) -> JSONResponse:
        """Pay an invoice as Telegram does: pre-checkout through the webhook, then, on the bot's
        "ok", the successful payment as a message of the buyer's."""
        secret = self.settings.webhook_secret
        if secret is None:
            return _error(NO_SECRET, 503)
        try:
            body = await self._body(request)
            user = sender(body.get("user"))
            invoice, message_id = payments.find_invoice(self.api, user, body)
        except BadInput as e:
            return _error(str(e))
        query_id = payments.new_query_id()
        update = payments.pre_checkout_update(await self._next_update_id(app_state(request)), query_id, user, invoice)
        delivered = await self._deliver(request, update, secret.get_secret_value())
        answer = self.api.checkout_answer(query_id)
        if answer is None:  # Telegram cancels the payment when the bot says nothing within 10 s
            return _error(f"the bot did not answer the pre-checkout query (webhook {delivered['webhook_status']})", 502)
        if not answer["ok"]:
            self.api.add_toast(user["id"], str(answer["error_message"]), alert=True)
            await self.persist()
            return JSONResponse({"ok": True, "paid": False, "error_message": answer["error_message"]})
        content = payments.take_payment(self.api, user, invoice)
        if message_id is not None:
            charge_id = content["successful_payment"]["telegram_payment_charge_id"]
            self.api.mark_invoice_paid(user["id"], message_id, charge_id)
        return await self._incoming(request, user, content)

    async def renew(self, request: Request) -> JSONResponse:
        """The subscription's next 30 days, charged now instead of in a month (or, with
        `charged_before_cancel`, a renewal that crossed the user's cancel on its way)."""
        try:
            body = await self._body(request)
            user = sender(body.get("user"))
            content = payments.renew(self.api, user, str(body.get("charge_id") or ""),
                                     charged_before_cancel=body.get("charged_before_cancel") is True)
        except BadInput as e:
            return _error(str(e))
        return await self._incoming(request, user, content)

    # ---- the network's side -----------------------------------------------------------------------

    async def fault(self, request: Request) -> JSONResponse:
        try:
            body = await self._body(request)
            action = str(body.get("action") or "")
            tg_user_id = int(body.get("tg_user_id") or 0)
            chat_id = int(body.get("chat_id") or 0)
            seconds = int(body.get("seconds") or 0)
        except (BadInput, TypeError, ValueError) as e:
            return _error(str(e) or "ids and seconds must be numbers")
        if not 0 <= seconds <= 86400:
            return _error("seconds must be 0..86400")
        net = self.net
        if action == "slowmode":
            if not chat_id:
                return _error("chat_id is required")
            await net.set_slowmode(chat_id, seconds)
            return JSONResponse({"ok": True})
        if not tg_user_id:
            return _error("tg_user_id is required")
        if action == "flood":
            await net.set_flood(tg_user_id, max(1, seconds))
        elif action == "revoke":
            await net.revoke_sessions(tg_user_id)
        elif action == "kill":
            await net.kill_connection(tg_user_id)
        elif action == "forbid":
            if not chat_id:
                return _error("chat_id is required")
            await net.forbid(chat_id, tg_user_id)
        else:
            return _error("unknown action")
        return JSONResponse({"ok": True})

    async def account(self, request: Request) -> JSONResponse:
        """Create (or update) the emulated account of a phone, optionally with a 2FA password."""
        try:
            body = await self._body(request)
        except BadInput as e:
            return _error(str(e))
        phone = normalize_phone(str(body.get("phone") or ""))
        if phone is None:
            return _error("phone must be in international format, e.g. +998901234567")
        password = str(body.get("password") or "")[:128] or None
        groups = [g.chat_id for g in await self.net.seeded_groups()]
        tg_user_id = await self.net.add_account(phone, password=password, groups=groups)
        return JSONResponse({"ok": True, "phone": phone, "tg_user_id": tg_user_id, "two_step": password is not None})
