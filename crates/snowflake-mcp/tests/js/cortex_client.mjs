#!/usr/bin/env node
// cortex_client.mjs — the Cortex tools through the official TypeScript MCP SDK: listed, each
// called, structuredContent checked by the SDK against the tool's outputSchema, the agent's
// progress heard through onprogress. Exit 0 with `TS_CORTEX_OK`; else `TS_CORTEX_FAIL: <reason>`
// and exit 1.
//
// USAGE  NODE_PATH=<node_modules with the SDK> node cortex_client.mjs <url>
// (a server on the scripted Snowflake with [cortex] configured as tests/cortex.rs does)
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
  const client = new Client({ name: 'ts-cortex', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  const names = (await client.listTools()).tools.map((t) => t.name);
  for (const tool of ['ask_analyst', 'support_docs', 'sales_agent']) {
    check(names.includes(tool), `${tool} not listed: ${names}`);
  }
  const call = async (name, args, options) => {
    const r = await client.callTool({ name, arguments: args }, undefined, options);
    check(!r.isError, `${name}: ${JSON.stringify(r.content)}`);
    return r.structuredContent;
  };
  const asked = await call('ask_analyst', { question: 'revenue by region last quarter?' });
  check(asked.sql.includes('GROUP BY REGION'), JSON.stringify(asked));
  const found = await call('support_docs', { query: 'shipping', limit: 2 });
  check(found.results.length === 1 && found.results[0].TITLE === 'Shipping times', JSON.stringify(found));
  const heard = [];
  const ran = await call('sales_agent', { question: 'How did sales do?' }, { onprogress: (p) => heard.push(p.message) });
  check(ran.sql.length === 1 && ran.tables[0].rows.length === 3, JSON.stringify(ran));
  check(heard.includes('agent: Executing SQL'), `progress heard: ${JSON.stringify(heard)}`);
  await client.close();
  console.log('TS_CORTEX_OK');
} catch (e) {
  console.log(`TS_CORTEX_FAIL: ${e.message}`);
  process.exit(1);
}
