#!/usr/bin/env python3
"""The Cortex tools through the OFFICIAL Python MCP SDK (PyPI `mcp`).

USAGE
  python cortex_client.py <mode> <url>

  mode  legacy | 2026-07-28  -- the initialize handshake, or sessionless requests
  url   a server on the scripted Snowflake with [cortex] configured as tests/cortex.rs does
        (ask_analyst, the search service support_docs, the agent sales_agent)

Lists the tools, asks the analyst for revenue by region, searches the support documents with a
filter, and runs the agent with a progress callback; the SDK validates each structuredContent
against the tool's outputSchema. Prints `PY_CORTEX_OK <mode>` when everything held, else fails
with the reason.
"""
import sys

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def need(condition, what):
    if not condition:
        raise SystemExit(f"cortex_client: {what}")


async def main(mode, url):
    async with create_mcp_http_client() as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            for tool in ("ask_analyst", "support_docs", "sales_agent"):
                need(tool in names, f"{tool} is not listed: {sorted(names)}")

            asked = await client.call_tool("ask_analyst", {"question": "What was revenue by region last quarter?"})
            need(not asked.is_error, f"ask_analyst failed: {asked.content}")
            s = asked.structured_content
            need("SUM(AMOUNT) AS REVENUE" in s["sql"], f"sql: {s}")
            need("revenue by region" in s["interpretation"], f"interpretation: {s}")

            found = await client.call_tool("support_docs", {"query": "refund", "filter": {"@eq": {"REGION": "AMER"}}})
            need(not found.is_error, f"search failed: {found.content}")
            docs = found.structured_content["results"]
            need([d["DOC_ID"] for d in docs] == ["KB-2"], f"results: {docs}")

            heard = []

            async def progress(value, total, message):
                heard.append(message)

            ran = await client.call_tool("sales_agent", {"question": "How did sales do?"}, progress_callback=progress)
            need(not ran.is_error, f"agent failed: {ran.content}")
            a = ran.structured_content
            need(a["answer"].startswith("Revenue last quarter"), f"answer: {a}")
            need(a["citations"][0]["doc_id"] == "KB-1", f"citations: {a['citations']}")
            need("agent: Planning the next steps" in heard, f"progress heard: {heard}")

            bad = await client.call_tool("support_docs", {"query": "x", "filter": {"@like": {"A": "b"}}})
            need(bad.is_error, "a filter outside the grammar must be refused")
    print(f"PY_CORTEX_OK {mode}")


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:3])
