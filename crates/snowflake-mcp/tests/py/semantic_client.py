#!/usr/bin/env python3
"""The semantic-view tools through the OFFICIAL Python MCP SDK (PyPI `mcp`).

USAGE
  python semantic_client.py <mode> <url>

  mode  legacy | 2026-07-28  -- the initialize handshake, or sessionless requests
  url   a server on the demo with [query] semantic_views = true

Lists the tools, then calls list_semantic_views, describe_semantic_view and
query_semantic_view ("revenue by region in 2024", largest first) and checks what they answer;
the SDK validates each structuredContent against the tool's outputSchema. Prints
`PY_SEMANTIC_OK <mode>` when everything held, else fails with the reason.
"""
import sys

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def need(condition, what):
    if not condition:
        raise SystemExit(f"semantic_client: {what}")


async def main(mode, url):
    async with create_mcp_http_client() as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            for tool in ("list_semantic_views", "describe_semantic_view", "query_semantic_view"):
                need(tool in names, f"{tool} is not listed: {sorted(names)}")

            listed = await client.call_tool("list_semantic_views", {})
            need(not listed.is_error, f"list_semantic_views failed: {listed.content}")
            views = listed.structured_content["semantic_views"]
            need([v["name"] for v in views] == ["SALES"], f"views: {views}")

            described = await client.call_tool("describe_semantic_view", {"name": "SALES"})
            need(not described.is_error, f"describe failed: {described.content}")
            metrics = {m["name"]: m for m in described.structured_content["metrics"]}
            need("TOTAL_REVENUE" in metrics, f"metrics: {sorted(metrics)}")
            need(metrics["TOTAL_REVENUE"].get("synonyms") == ["revenue", "sales"], f"{metrics['TOTAL_REVENUE']}")

            answer = await client.call_tool("query_semantic_view", {
                "name": "SALES",
                "metrics": ["orders.total_revenue"],
                "dimensions": ["regions.region_name"],
                "where": [{"dimension": "orders.order_year", "op": "=", "value": 2024}],
                "order_by": ["total_revenue DESC"],
            })
            need(not answer.is_error, f"query failed: {answer.content}")
            s = answer.structured_content
            need([c["name"] for c in s["columns"]] == ["REGION_NAME", "TOTAL_REVENUE"], f"columns: {s['columns']}")
            revenue = [float(r[1]) for r in s["rows"]]
            need(len(revenue) == 5 and revenue == sorted(revenue, reverse=True), f"rows: {s['rows']}")
            need("REGION_NAME" in answer.content[0].text, f"text: {answer.content[0].text}")

            refused = await client.call_tool("query_semantic_view", {"name": "SALES", "facts": ["orders.amount"], "metrics": ["orders.order_count"]})
            need(refused.is_error, "facts with metrics must be refused")
    print(f"PY_SEMANTIC_OK {mode}")


if __name__ == "__main__":
    anyio.run(main, *sys.argv[1:3])
