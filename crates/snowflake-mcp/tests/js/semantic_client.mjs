#!/usr/bin/env node
// semantic_client.mjs — the semantic-view tools through the official TypeScript MCP SDK: listed,
// each called, structuredContent checked by the SDK against the tool's outputSchema. Exit 0
// with `TS_SEMANTIC_OK`; else `TS_SEMANTIC_FAIL: <reason>` and exit 1.
//
// USAGE  NODE_PATH=<node_modules with the SDK> node semantic_client.mjs <url>
// (a server on the demo with [query] semantic_views = true)
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// ES modules ignore NODE_PATH: import the SDK's ES build from there by path.
const sdk = (sub) =>
  import(pathToFileURL(path.join(process.env.NODE_PATH ?? 'node_modules', '@modelcontextprotocol/sdk/dist/esm', sub)).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');

const [url] = process.argv.slice(2);
const check = (cond, msg) => { if (!cond) throw new Error(msg); };

try {
  const client = new Client({ name: 'ts-semantic', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  const names = (await client.listTools()).tools.map((t) => t.name);
  for (const tool of ['list_semantic_views', 'describe_semantic_view', 'query_semantic_view']) {
    check(names.includes(tool), `${tool} not listed: ${names}`);
  }
  const call = async (name, args) => {
    const r = await client.callTool({ name, arguments: args });
    check(!r.isError, `${name}: ${JSON.stringify(r.content)}`);
    return r.structuredContent;
  };
  const listed = await call('list_semantic_views', {});
  check(listed.semantic_views.map((v) => v.name).join() === 'SALES', JSON.stringify(listed));
  const described = await call('describe_semantic_view', { name: 'DEMO.SALES.SALES' });
  check(described.dimensions.some((d) => d.name === 'REGION_NAME'), JSON.stringify(described));
  const monthly = await call('query_semantic_view', {
    name: 'SALES', metrics: ['orders.total_revenue'], dimensions: ['orders.order_month', 'regions.region_name'],
    where: [{ dimension: 'regions.region_name', op: 'IN', value: ['North', 'South'] }],
    order_by: ['order_month', 'region_name'],
  });
  check(monthly.columns.map((c) => c.name).join() === 'ORDER_MONTH,REGION_NAME,TOTAL_REVENUE', JSON.stringify(monthly.columns));
  check(monthly.rows.length === 24 && monthly.rows.every((r) => ['North', 'South'].includes(r[1])), `${monthly.rows.length} rows`);
  await client.close();
  console.log('TS_SEMANTIC_OK');
} catch (e) {
  console.log(`TS_SEMANTIC_FAIL: ${e.message}`);
  process.exit(1);
}
