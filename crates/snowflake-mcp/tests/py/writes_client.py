#!/usr/bin/env python3
"""A write confirmed (or declined) by a person, through the OFFICIAL Python MCP SDK (PyPI `mcp`).

USAGE
  python writes_client.py <mode> <url> <token> <answer> <sql>

  mode    legacy      -- the initialize handshake (2025-11-25): the server sends an
                         elicitation/create request during the call
          2026-07-28  -- sessionless: the server answers input_required and the SDK
                         repeats the call with the person's answer (MRTR)
  answer  accept | decline | cancel  -- what the "person" (the elicitation callback) does

Prints one JSON line `PY_WRITES_RESULT {...}`: whether the call failed, its error kind, the
structured result, and the messages the person was shown; then `PY_WRITES_OK <mode>`.
"""
import json
import sys

import anyio
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(mode, url, token, answer, sql):
    shown = []

    async def person(context, params):
        shown.append(params.message)
        if answer == "accept":
            return types.ElicitResult(action="accept", content={"confirm": True})
        if answer == "decline":
            return types.ElicitResult(action="decline")
        return types.ElicitResult(action="cancel")

    headers = {"Authorization": f"Bearer {token}"}
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, elicitation_callback=person) as client:
            r = await client.call_tool("run_query", {"sql": sql})
            error = (r.meta or {}).get("error", {})
            print("PY_WRITES_RESULT " + json.dumps({
                "is_error": bool(r.is_error),
                "kind": error.get("kind"),
                "text": r.content[0].text if r.content else "",
                "structured": r.structured_content,
                "shown": shown,
            }))
    print(f"PY_WRITES_OK {mode}")


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:6])
