#!/usr/bin/env python3
"""Drive snowflake-mcp with the OFFICIAL Python MCP SDK (PyPI `mcp`, pinned in
requirements.txt next to this file) and assert what a real Python client sees.

USAGE
  python sdk_client.py http  <url> [token]         e.g. http://127.0.0.1:8765/mcp
  python sdk_client.py stdio <binary> [args...]    e.g. /path/snowflake-mcp stdio --demo --state X.db

  http   Streamable HTTP (`Authorization: Bearer <token>` when a token is given).
  stdio  the SDK spawns `<binary> <args...>`; the child gets the SDK's default
         environment plus SNOWFLAKE_MCP_CACHE, SNOWFLAKE_HOME, RUST_LOG,
         RUST_BACKTRACE and LLVM_PROFILE_FILE when set. Its stderr is inherited.
  SDK_CLIENT_TIMEOUT (seconds, default 240) bounds the whole run.

Needs the offline demo backend (--demo). The scenario runs twice per mode: with
mode="legacy" (the `initialize` handshake; over HTTP a session id, DELETEd on
close, which must get 200/204, after which the old id must get 404) and with the
SDK's default mode="auto" (probes `server/discover`, falls back to initialize).
Each pass: exactly the 8 tools, each with an outputSchema; every tool called
successfully (structuredContent checked by the SDK against the outputSchema -- a
mismatch raises -- and again here with jsonschema); tool errors (isError, no
structuredContent, text `<kind>: ...`, result `_meta.error.kind`); an unknown tool
must raise MCPError -32602 (or -32601). Warnings from the `mcp` loggers are
printed; "Session termination failed" or any ERROR record fails the run.

Exit 0 with a last stdout line `PY_SDK_CLIENT_OK <mode>`; on failure a line
`PY_SDK_CLIENT_FAIL <mode>: <reason>` on stderr and exit 1 (2 for usage).
"""
import json
import logging
import os
import sys

import anyio
import httpx2
import jsonschema
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

TOOLS = sorted(["list_databases", "list_schemas", "list_objects", "describe_object",
                "run_query", "get_result", "fetch_rows", "cancel_query", "explain_query",
                "get_context", "set_context", "query_history"])
PASS_ENV = ["SNOWFLAKE_MCP_CACHE", "SNOWFLAKE_HOME", "RUST_LOG", "RUST_BACKTRACE", "LLVM_PROFILE_FILE"]
MODE = sys.argv[1] if len(sys.argv) > 1 else ""
LAST = ["nothing yet (connecting)"]  # the last progress line, named in failure messages


class TestFailure(Exception):
    pass


def log(msg):
    LAST[0] = msg
    print(f"py_sdk_client[{MODE}]: {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def j(v):
    s = json.dumps(v, default=str)
    return s if len(s) <= 600 else s[:600] + "..."


class Captured(logging.Handler):
    """Keeps every WARNING+ record of the `mcp` loggers (they still reach stderr too)."""
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


async def call_ok(client, schemas, name, args=None):
    try:
        r = await client.call_tool(name, args or {})
    except RuntimeError as e:  # the SDK's outputSchema check raises RuntimeError
        raise TestFailure(f"{name} {j(args)}: the SDK rejected the result: {str(e).splitlines()[0]}") from e
    check(not r.is_error, f"{name} {j(args)}: unexpected tool error: {j(r.model_dump(by_alias=True))}")
    sc = r.structured_content
    check(isinstance(sc, dict), f"{name} {j(args)}: no structuredContent: {j(r.model_dump(by_alias=True))}")
    errs = [e.message for e in jsonschema.validators.validator_for(schemas[name])(schemas[name]).iter_errors(sc)]
    check(not errs, f"{name} {j(args)}: structuredContent does not match its outputSchema: {errs}")
    return sc


async def call_err(client, name, args, kind):
    r = await client.call_tool(name, args)
    dump = j(r.model_dump(by_alias=True, exclude_unset=True))
    check(r.is_error is True, f"{name} {j(args)}: expected isError true, got {dump}")
    check(r.structured_content is None and "structured_content" not in r.model_fields_set,
          f"{name} {j(args)}: an error result must carry no structuredContent: {dump}")
    text = r.content[0].text if r.content and r.content[0].type == "text" else None
    err = (r.meta or {}).get("error")  # the SDK exposes the result's `_meta` as `.meta`
    check(isinstance(err, dict) and isinstance(err.get("kind"), str) and isinstance(err.get("message"), str),
          f"{name} {j(args)}: result _meta.error must be {{kind, message, ...}}: {dump}")
    check(kind is None or err["kind"] == kind, f"{name} {j(args)}: expected kind {kind}, got {dump}")
    check(isinstance(text, str) and text.startswith(f"{err['kind']}: "),
          f"{name} {j(args)}: first text content must start with '{err['kind']}: ', got {dump}")
    log(f"ok   {name} {j(args)} -> tool error {err['kind']}: {err['message'][:80]}")


async def scenario(client, tag):
    log(f"[{tag}] connected to {client.server_info and client.server_info.name}, protocol {client.protocol_version}")
    check(client.server_capabilities.tools is not None, "server does not advertise the tools capability")
    tools = (await client.list_tools()).tools
    names = sorted(t.name for t in tools)
    check(names == TOOLS, f"list_tools: expected exactly {TOOLS}, got {names}")
    for t in tools:
        check(isinstance(t.output_schema, dict) and t.output_schema.get("type") == "object",
              f"list_tools: {t.name} has no object outputSchema: {j(t.output_schema)}")
    schemas = {t.name: t.output_schema for t in tools}
    # The SDK must really validate: a result that violates run_query's outputSchema is refused.
    from mcp.types import CallToolResult
    try:
        await client.session.validate_tool_result("run_query", CallToolResult(content=[], structured_content={"rows": "x"}))
        raise TestFailure("the SDK accepted structuredContent that violates run_query's outputSchema")
    except RuntimeError:
        pass
    log(f"ok   [{tag}] list_tools -> 8 tools with outputSchemas; the SDK enforces them")

    dbs = await call_ok(client, schemas, "list_databases")
    check(any(d["name"] == "DEMO" for d in dbs["databases"]), f"list_databases: no DEMO in {j(dbs)}")
    sch = await call_ok(client, schemas, "list_schemas", {"database": "DEMO"})
    check(any(s["name"] == "SALES" for s in sch["schemas"]), f"list_schemas: no SALES in {j(sch)}")
    objs = await call_ok(client, schemas, "list_objects", {"schema": "SALES"})
    onames = [o["name"] for o in objs["objects"]]
    check({"CUSTOMERS", "ORDERS"} <= set(onames), f"list_objects: CUSTOMERS/ORDERS missing from {onames}")
    cust = await call_ok(client, schemas, "list_objects", {"pattern": "CUST%", "kind": "table"})
    check([o["name"] for o in cust["objects"]] == ["CUSTOMERS"], f"list_objects CUST%: {j(cust)}")
    desc = await call_ok(client, schemas, "describe_object", {"name": "CUSTOMERS"})
    check(desc["name"].endswith("CUSTOMERS") and desc["columns"], f"describe_object: {j(desc)}")
    setc = await call_ok(client, schemas, "set_context", {"schema": "SALES"})
    check(setc.get("schema") == "SALES", f"set_context: expected schema SALES, got {j(setc)}")
    ctx = await call_ok(client, schemas, "get_context")
    check((ctx.get("database"), ctx.get("schema")) == ("DEMO", "SALES"), f"get_context: expected DEMO.SALES, got {j(ctx)}")
    n = await call_ok(client, schemas, "run_query", {"sql": "SELECT COUNT(*) AS N FROM CUSTOMERS"})
    check(n["rows"] == [[1000]] and n["row_count"] == 1 and n["truncated"] is False, f"run_query COUNT(*): {j(n)}")
    capped = await call_ok(client, schemas, "run_query", {"sql": "SELECT * FROM CUSTOMERS", "max_rows": 5})
    check(len(capped["rows"]) == 5 and capped["truncated"] is True, f"run_query max_rows 5: {j(capped)}")
    hist = await call_ok(client, schemas, "query_history", {"limit": 10})
    check(any("COUNT(*) AS N FROM CUSTOMERS" in (q.get("sql") or "") for q in hist["queries"]),
          f"query_history: the COUNT(*) query is missing: {j(hist)}")
    log(f"ok   [{tag}] all 8 tools succeeded; structuredContent accepted (DEMO.SALES: {', '.join(onames)})")

    await call_err(client, "run_query", {"sql": "DELETE FROM CUSTOMERS"}, "not_allowed")
    await call_err(client, "run_query", {"sql": "SELECT NO_SUCH_COLUMN FROM CUSTOMERS"}, "sql_error")
    await call_err(client, "describe_object", {"name": "NO_SUCH_TABLE"}, "not_found")
    await call_err(client, "set_context", {"database": "NOPE"}, "not_found")
    await call_err(client, "run_query", {"sql": "SELECT 1", "max_rows": -1}, "invalid_argument")
    await call_err(client, "run_query", {"sql": ""}, "not_allowed")
    ctx = await call_ok(client, schemas, "get_context")
    check((ctx.get("database"), ctx.get("schema")) == ("DEMO", "SALES"),
          f"get_context after failed calls: the context changed to {j(ctx)}")
    # The failed query is in the history, with its error kind.
    hist = await call_ok(client, schemas, "query_history", {"limit": 10})
    failed = [q for q in hist["queries"] if "NO_SUCH_COLUMN" in (q.get("sql") or "")]
    check(failed and failed[0].get("status") == "sql_error",
          f"query_history: the failed query should be recorded as sql_error: {j(hist)}")
    try:
        r = await client.call_tool("no_such_tool", {})
        raise TestFailure(f"unknown tool: expected MCPError, got a result {j(r.model_dump(by_alias=True))}")
    except MCPError as e:
        check(e.code in (-32602, -32601), f"unknown tool: expected JSON-RPC -32602 (or -32601), got {e.code} {e.message}")
        log(f"ok   unknown tool -> SDK raised MCPError {e.code}: {e.message}")
    await call_ok(client, schemas, "get_context")  # still usable after a protocol error


async def run_http(url, token):
    for mode in ("legacy", "auto"):
        LAST[0] = f"[{mode}] connecting to {url}"
        seen = []  # (method, status, session id) of every HTTP exchange

        async def on_response(resp):
            seen.append((resp.request.method, resp.status_code, resp.request.headers.get("mcp-session-id")))

        headers = {"Authorization": f"Bearer {token}"} if token else None
        async with create_mcp_http_client(headers=headers) as http:
            http.event_hooks["response"].append(on_response)
            async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                await scenario(client, mode)
            deletes = [s for s in seen if s[0] == "DELETE"]
            sids = {s[2] for s in seen if s[2]}
            if mode == "legacy" or sids:
                check(len(sids) == 1, f"[{mode}] expected one session id, saw {sids}")
                check(len(deletes) == 1 and deletes[0][1] in (200, 204),
                      f"[{mode}] closing must DELETE the session once with 200/204, saw {deletes}")
                sid = sids.pop()
                after = await http.post(url, headers={"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25",
                                                      "accept": "application/json, text/event-stream"},
                                        json={"jsonrpc": "2.0", "id": 99, "method": "tools/list", "params": {}})
                check(after.status_code == 404, f"[{mode}] old session id after DELETE: HTTP {after.status_code}, expected 404")
                log(f"ok   [{mode}] closed: DELETE session -> {deletes[0][1]}; the old id now gets 404")
            else:
                check(not deletes, f"[{mode}] no session, yet the SDK sent DELETE: {deletes}")
                log(f"ok   [{mode}] sessionless ({len(seen)} HTTP exchanges), nothing to DELETE")


async def run_stdio(binary, args):
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    params = StdioServerParameters(command=binary, args=args, env=env)  # merged over the SDK default env
    for mode in ("legacy", "auto"):
        LAST[0] = f"[{mode}] spawning {binary}"
        async with Client(params, mode=mode) as client:
            await scenario(client, mode)
        log(f"ok   [{mode}] closed")


def leaf(e):
    """The TestFailure (else the first leaf) inside anyio's exception groups."""
    if isinstance(e, BaseExceptionGroup):
        found = [leaf(x) for x in e.exceptions]
        return next((x for x in found if isinstance(x, TestFailure)), found[0])
    return e


def main():
    argv = sys.argv[1:]
    if not ((MODE == "http" and len(argv) in (2, 3)) or (MODE == "stdio" and len(argv) >= 2)):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    captured = Captured()
    mcp_logger = logging.getLogger("mcp")
    mcp_logger.addHandler(captured)
    mcp_logger.addHandler(logging.StreamHandler(sys.stderr))
    mcp_logger.setLevel(logging.WARNING)
    timeout = float(os.environ.get("SDK_CLIENT_TIMEOUT", "240"))

    async def body():
        with anyio.fail_after(timeout):
            if MODE == "http":
                await run_http(argv[1], argv[2] if len(argv) == 3 else None)
            else:
                await run_stdio(argv[1], argv[2:])

    try:
        anyio.run(body)
        for r in captured.records:
            msg = r.getMessage()
            check(r.levelno < logging.ERROR and "Session termination failed" not in msg,
                  f"the SDK logged {r.levelname} on {r.name}: {msg}")
            log(f"note: SDK warning on {r.name}: {msg}")
    except BaseException as e:  # noqa: BLE001 -- report everything in one line
        e = leaf(e)
        if isinstance(e, TimeoutError):
            e = TestFailure(f"timed out after {timeout} s; last progress: {LAST[0]}")
        reason = str(e) if isinstance(e, TestFailure) else f"unexpected {type(e).__name__}: {e!r}; last progress: {LAST[0]}"
        print(f"PY_SDK_CLIENT_FAIL {MODE}: {reason}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"PY_SDK_CLIENT_OK {MODE}", flush=True)


if __name__ == "__main__":
    main()
