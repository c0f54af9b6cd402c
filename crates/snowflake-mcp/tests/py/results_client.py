#!/usr/bin/env python3
"""Result handles through the OFFICIAL Python MCP SDK (PyPI `mcp`): long statements answered
by result_id, pages of the same result, cancel, another client's handle -- and, in a second
run, the same handles after a restart or on another replica.

USAGE
  python results_client.py start  <url> <token> <other token> <file>
  python results_client.py resume <url> <token> <other token> <file>

  start   runs the scenario and writes the handles it leaves to <file> (JSON)
  resume  reads <file> and checks those handles still work for <token> and are
          not_found for <other token>

Needs the offline demo backend (--demo). The SDK checks every structuredContent against the
tool's outputSchema. Exit 0 with a last stdout line `PY_RESULTS_OK <verb>`; on failure
`PY_RESULTS_FAIL <verb>: <reason>` on stderr and exit 1.
"""
import json
import sys

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


async def call(client, name, args):
    r = await client.call_tool(name, args)  # the SDK validates structuredContent
    return r


async def ok(client, name, args):
    r = await call(client, name, args)
    check(not r.is_error, f"{name} {args}: unexpected error: {r.content[0].text if r.content else r}")
    return r.structured_content


async def err(client, name, args):
    r = await call(client, name, args)
    check(r.is_error, f"{name} {args}: expected an error, got {r.structured_content}")
    return (r.meta or {}).get("error", {}).get("kind")


async def connected(url, token, body):
    headers = {"Authorization": f"Bearer {token}"}
    async with create_mcp_http_client(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            return await body(client)


async def page_to_the_end(client, first, limit):
    rows = list(first["rows"])
    nxt = first.get("next")
    while nxt is not None:
        page = await ok(client, "fetch_rows", {"result_id": first["result_id"], "cursor": nxt, "limit": limit})
        check(page.get("offset") == len(rows), f"a page starts where the last ended: {page.get('offset')} vs {len(rows)}")
        rows += page["rows"]
        nxt = page.get("next")
    return rows


async def start(url, token, other, path):
    async def as_owner(c):
        running = await ok(c, "run_query", {"sql": "SELECT SYSTEM$WAIT(2)", "wait_secs": 0.3})
        check(running["status"] == "running" and running.get("result_id"), f"running: {running}")
        done = await ok(c, "get_result", {"result_id": running["result_id"], "wait_secs": 10})
        check(done["status"] == "done" and done["rows"] == [["waited 2 seconds"]], f"done: {done}")

        first = await ok(c, "run_query", {"sql": "SELECT ORDER_ID FROM ORDERS ORDER BY ORDER_ID", "max_rows": 300})
        check(first["truncated"] and first.get("next") == "300", f"first page: {j(first)}")
        rows = await page_to_the_end(c, first, 900)
        check(len(rows) == first["total_rows"], f"paged {len(rows)} of {first['total_rows']}")
        check(len({r[0] for r in rows}) == len(rows), "no row twice")

        long = await ok(c, "run_query", {"sql": "SELECT SYSTEM$WAIT(60)", "wait_secs": 0.2})
        stopped = await ok(c, "cancel_query", {"result_id": long["result_id"]})
        check(stopped["status"] == "cancelled", f"cancel: {stopped}")
        check(await err(c, "get_result", {"result_id": long["result_id"]}) == "cancelled", "a stopped query says so")

        pending = await ok(c, "run_query", {"sql": "SELECT SYSTEM$WAIT(3)", "wait_secs": 0})
        check(pending["status"] == "running", f"pending: {pending}")
        return {"big": first["result_id"], "total": first["total_rows"], "last": rows[-1][0],
                "pending": pending["result_id"]}

    handles = await connected(url, token, as_owner)
    await check_foreign(url, other, handles)
    with open(path, "w") as f:
        json.dump(handles, f)


async def check_foreign(url, other, handles):
    async def as_other(c):
        for tool in ("get_result", "fetch_rows", "cancel_query"):
            for key in ("big", "pending"):
                kind = await err(c, tool, {"result_id": handles[key]})
                check(kind == "not_found", f"another client's {tool} on {key}: {kind}")
    await connected(url, other, as_other)


async def resume(url, token, other, path):
    with open(path) as f:
        handles = json.load(f)

    async def as_owner(c):
        done = await ok(c, "get_result", {"result_id": handles["pending"], "wait_secs": 15})
        check(done["status"] == "done" and done["rows"] == [["waited 3 seconds"]], f"pending: {done}")
        last = await ok(c, "fetch_rows", {"result_id": handles["big"], "offset": handles["total"] - 1, "limit": 5})
        check(last["row_count"] == 1 and last["rows"][0][0] == handles["last"], f"last row: {last}")
        check("next" not in last, "nothing after the last row")

    await connected(url, token, as_owner)
    await check_foreign(url, other, handles)


def j(v):
    s = json.dumps(v, default=str)
    return s if len(s) <= 400 else s[:400] + "..."


def main():
    verb, url, token, other, path = sys.argv[1:6]
    try:
        anyio.run(start if verb == "start" else resume, url, token, other, path)
    except BaseException as e:  # noqa: BLE001 -- report everything in one line
        while isinstance(e, BaseExceptionGroup):
            e = e.exceptions[0]
        print(f"PY_RESULTS_FAIL {verb}: {e!r}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"PY_RESULTS_OK {verb}", flush=True)


if __name__ == "__main__":
    main()
