"""HTTP for the simulator: the Bot API, file downloads, and the ``/_sim`` control API.

- ``GET|POST /bot<token>/<method>``: parameters from the query string and from a JSON,
  urlencoded or multipart body (uploaded files are multipart parts), as the real server takes them.
- ``GET /file/bot<token>/<file_path>``: the bytes of a file named by getFile.
- ``/_sim/...``: a small JSON API to drive virtual users, read what they received, inject
  faults and read flood statistics (for the demo page and other processes). It has no
  authentication: the simulator listens on loopback only.

Access logs are off: request paths carry the bot token.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aiohttp import web

from simulators.telegram.errors import ApiError, bad_request, not_found
from simulators.telegram.faults import Fault
from simulators.telegram.flood import FloodLimits
from simulators.telegram.spec import Upload
from simulators.telegram.world import SimulatorError

if TYPE_CHECKING:
    from simulators.telegram.simulator import TelegramSimulator

MAX_REQUEST = 60 * 1024 * 1024  # above the 50 MB Bot API upload limit
SIM = web.AppKey("simulator", object)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))  # compact, as the real server


def _json(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


async def read_params(request: web.Request) -> tuple[dict[str, str], dict[str, Upload]]:
    """All parameters as strings (non-string JSON values re-serialised), and uploaded files."""
    raw: dict[str, str] = dict(request.query)
    files: dict[str, Upload] = {}
    if not request.body_exists:
        return raw, files
    if request.content_type == "application/json":
        try:
            body = json.loads(await request.text())
        except ValueError:
            raise bad_request("can't parse JSON object") from None
        if not isinstance(body, dict):
            raise bad_request("can't parse JSON object")
        for key, value in body.items():
            if value is not None:
                raw[key] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files[key] = Upload(value.filename or key, value.content_type or "", value.file.read())
            else:
                raw[key] = value
    return raw, files


class SimulatorServer:
    def __init__(self, sim: TelegramSimulator) -> None:
        self.sim = sim
        self.app = build_app(sim)
        self.runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> str:
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, host, port).start()
        bound_host, bound_port = self.runner.addresses[0][:2]  # the port chosen when port=0
        return f"http://{bound_host}:{bound_port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def build_app(sim: TelegramSimulator) -> web.Application:
    """The simulator's aiohttp application (the demo may also mount it in its own server)."""
    app = web.Application(client_max_size=MAX_REQUEST)
    app[SIM] = sim
    app.router.add_route("*", "/bot{token}/{method}", api_call)
    app.router.add_get("/file/bot{token}/{path:.+}", file_download)
    control_routes(app)
    app.router.add_route("*", "/{tail:.*}", unknown_path)
    return app


async def api_call(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    try:
        raw, files = await read_params(request)
    except ApiError as exc:
        return _json(exc.envelope(), exc.code)
    status, body = await sim.call(request.match_info["token"], request.match_info["method"], raw, files)
    if isinstance(body, str):
        return web.Response(text=body, status=status, content_type="text/html")
    return _json(body, status)


async def file_download(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    found = sim.download(request.match_info["path"]) if request.match_info["token"] == sim.token else None
    if found is None:
        return _json(not_found().envelope(), 404)
    data, mime_type = found
    return web.Response(body=data, content_type=mime_type)


async def unknown_path(request: web.Request) -> web.Response:
    return _json(not_found().envelope(), 404)


# -- the /_sim control API -----------------------------------------------------------------


def control_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/_sim/state", sim_state)
    r.add_get("/_sim/users", list_users)
    r.add_post("/_sim/users", create_user)
    r.add_get("/_sim/users/{id}/messages", user_messages)
    r.add_post("/_sim/users/{id}/{action}", user_action)
    r.add_post("/_sim/faults", add_fault)
    r.add_delete("/_sim/faults", clear_faults)
    r.add_get("/_sim/flood", flood_stats)
    r.add_post("/_sim/flood", set_flood)


def _control(handler):
    """Run a control handler; a refused action is a 400 with {"error": ...}, never a crash."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.body_exists else {}
            return _json(await handler(request.app[SIM], request, body))
        except KeyError as exc:
            return _json({"error": f"missing field {exc}"}, 400)
        except (SimulatorError, ValueError, TypeError) as exc:
            return _json({"error": str(exc) or type(exc).__name__}, 400)
        except TimeoutError as exc:
            return _json({"error": str(exc) or "timeout"}, 408)

    return wrapped


@_control
async def sim_state(sim, request, body) -> dict:
    return {
        "bot": sim.world.bot,
        "users": [u.as_json() for u in sim.users],
        "webhook_url": sim.webhook_url,
        "pending_update_count": sim.pending_update_count,
        "flood": sim.flood_stats(),
        "faults": [f.as_json() for f in sim.faults.pending()],
    }


@_control
async def list_users(sim, request, body) -> list:
    return [u.as_json() for u in sim.users]


@_control
async def create_user(sim, request, body) -> dict:
    allowed = {"id", "last_name", "username", "language_code"}
    user = sim.create_user(body.get("first_name", "Test"), **{k: v for k, v in body.items() if k in allowed})
    return user.as_json()


@_control
async def user_messages(sim, request, body) -> dict:
    """All bot messages in the chat; with ``?wait=SECONDS`` the next unread one (long poll)."""
    user = int(request.match_info["id"])
    if "wait" in request.query:
        message = await sim.wait_for_message(user, timeout=min(60.0, float(request.query["wait"])))
        return message.as_json()
    return {"messages": [m.as_json() for m in sim.messages(user)], "callback_answers": sim.callback_answers(user)}


ACTIONS = {
    "text": lambda sim, u, b: sim.send_text(u, b["text"]),
    "command": lambda sim, u, b: sim.send_command(u, b["command"], b.get("argument", "")),
    "press": lambda sim, u, b: sim.press_button(
        u, int(b["message_id"]), data=b.get("callback_data"), text=b.get("text")
    ),
    "location": lambda sim, u, b: sim.share_location(
        u, float(b["latitude"]), float(b["longitude"]), b.get("horizontal_accuracy")
    ),
    "photo": lambda sim, u, b: sim.send_photo(
        u, caption=b.get("caption"), width=int(b.get("width", 800)), height=int(b.get("height", 600))
    ),
    "poll_answer": lambda sim, u, b: sim.answer_poll(u, int(b["message_id"]), [int(i) for i in b["option_ids"]]),
    "edit": lambda sim, u, b: sim.edit_message(u, int(b["message_id"]), b["text"]),
    "block": lambda sim, u, b: sim.block_bot(u),
    "unblock": lambda sim, u, b: sim.unblock_bot(u),
}


@_control
async def user_action(sim, request, body) -> dict:
    action = ACTIONS.get(request.match_info["action"])
    if action is None:
        raise SimulatorError(f"unknown action; one of {', '.join(ACTIONS)}")
    return {"update": action(sim, int(request.match_info["id"]), body)}


@_control
async def add_fault(sim, request, body) -> dict:
    allowed = {"method", "chat_id", "times", "retry_after", "seconds", "deliver"}
    fault: Fault = sim.inject(body["kind"], **{k: v for k, v in body.items() if k in allowed})
    return fault.as_json()


@_control
async def clear_faults(sim, request, body) -> dict:
    sim.clear_faults()
    return {"faults": []}


@_control
async def flood_stats(sim, request, body) -> dict:
    return {"limits": vars(sim.flood.limits), "stats": sim.flood_stats()}


@_control
async def set_flood(sim, request, body) -> dict:
    fields = {"enabled", "global_rate", "global_burst", "chat_rate", "chat_burst"}
    current = vars(sim.flood.limits)
    sim.set_flood_limits(FloodLimits(**{**current, **{k: v for k, v in body.items() if k in fields}}))
    if body.get("reset_stats"):
        sim.flood.reset_stats()
    return {"limits": vars(sim.flood.limits), "stats": sim.flood_stats()}
