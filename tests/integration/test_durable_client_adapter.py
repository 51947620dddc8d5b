"""The Azure adapter over the real ``DurableOrchestrationClient``: its HTTP calls go to a loopback stand-in of the
Durable extension's management API, backed by the local runner, so the adapter's exactly-once logic, 404 handling
and status mapping are exercised through the SDK's own client code."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import azure.durable_functions as df
import pytest
from aiohttp import web

from shared import bootstrap
from shared.adapters.durable_client import DurableClientOrchestrations
from shared.domain.request import instance_id_for
from shared.runtime.local_durable import LocalDurableRunner

from .stack import http, request, sb_message, stack, vmss

MP = pytest.MonkeyPatch


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def extension_api(runner: LocalDurableRunner, calls: list[str]) -> web.Application:
    """The routes of the Durable extension's RPC endpoint that the client uses, as the extension answers them."""

    def status_json(iid: str) -> dict[str, Any] | None:
        s = runner.status(iid)
        if s is None:
            return None
        return {"name": s["name"], "instanceId": iid, "createdTime": _iso(s["created_at"]),
                "lastUpdatedTime": _iso(s["last_updated_at"]), "runtimeStatus": s["runtime_status"],
                "customStatus": s["custom_status"], "output": s["output"], "input": None}

    async def body(req: web.Request) -> Any:
        data = await req.json()  # the client sends its input already serialised: a JSON string of JSON
        return json.loads(data) if isinstance(data, str) else data

    async def start(req: web.Request) -> web.Response:
        calls.append(f"start {req.match_info['iid']}")
        runner.start_new(req.match_info["name"], req.match_info["iid"], await body(req))
        return web.json_response({"id": req.match_info["iid"]}, status=202)

    async def get(req: web.Request) -> web.Response:
        calls.append(f"status {req.match_info['iid']}")
        s = status_json(req.match_info["iid"])
        if s is None:
            return web.Response(status=404)
        return web.json_response(s, status=200 if s["runtimeStatus"] == "Completed" else 202)

    async def get_all(req: web.Request) -> web.Response:
        return web.json_response([status_json(i) for i in runner.instances], status=200)

    async def raise_event(req: web.Request) -> web.Response:
        iid = req.match_info["iid"]
        if iid not in runner.instances:
            return web.json_response(None, status=404)
        runner.raise_event(iid, req.match_info["event"], await body(req))
        return web.json_response(None, status=202)

    app = web.Application()
    app.router.add_post("/runtime/webhooks/durabletask/orchestrators/{name}/{iid}", start)
    app.router.add_get("/runtime/webhooks/durabletask/instances/", get_all)
    app.router.add_get("/runtime/webhooks/durabletask/instances/{iid}", get)
    app.router.add_post("/runtime/webhooks/durabletask/instances/{iid}/raiseEvent/{event}", raise_event)
    return app


def test_durable_client_adapter_starts_once_and_finds_the_finished_instance(monkeypatch: MP) -> None:
    from azure.durable_functions.models.utils import http_utils

    calls: list[str] = []

    async def scenario(s: Any) -> None:
        site_runner = web.AppRunner(extension_api(s.runner, calls))
        await site_runner.setup()
        site = web.TCPSite(site_runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        client = json.dumps({"taskHubName": "ShadowRolloutHub", "creationUrls": {}, "managementUrls": {},
                             "rpcBaseUrl": f"http://127.0.0.1:{port}/runtime/webhooks/durabletask/"})
        fn = s.fn("intake_service_bus")
        try:
            await fn(sb_message(request("dc-1"), message_id="m1"), client=client)
            await fn(sb_message(request("dc-1"), message_id="m1", delivery_count=2), client=client)
            s.runner.run()
            await fn(sb_message(request("dc-1"), message_id="m2"), client=client)
            adapter = DurableClientOrchestrations(df.DurableOrchestrationClient(client))
            st = await adapter.status(instance_id_for("dc-1"))
            assert st is not None and st.runtime_status == "Completed" and st.custom_status["phase"] == "done"
            assert await adapter.status("rollout-none") is None
            listed = await adapter.list(name="rollout_orchestrator")
            assert [x.instance_id for x in listed] == [instance_id_for("dc-1")]
            # an approval travels as an external event through the real client
            gated = request("dc-2", targets=[vmss("api")], approval_required=True)
            await fn(sb_message(gated, message_id="m3"), client=client)
            s.run(until_phase=("dc-2", "awaiting_approval"))
            resp = await s.fn("approve_rollout_http")(
                http("POST", "rollouts/dc-2/approve", {"by": "mallory"}, route_params={"rollout_id": "dc-2"},
                     as_="gina"),  # the body's "by" is ignored: gina is signed in
                client=client)
            assert resp.status_code == 202, resp.get_body()
            s.runner.run()
        finally:
            await http_utils._close_session()  # the SDK keeps one aiohttp session per process
            await site_runner.cleanup()

    with stack(monkeypatch) as s:
        bootstrap.install_orchestrations(None)  # the triggers wrap the real client binding
        asyncio.run(scenario(s))
        assert calls.count(f"start {instance_id_for('dc-1')}") == 1
        assert sorted(s.top_level()) == [instance_id_for("dc-1"), instance_id_for("dc-2")]
        assert s.record("dc-1")["state"] == "completed"
        assert s.record("dc-2")["state"] == "completed" and s.record("dc-2")["approval"]["by"] == "gina"
