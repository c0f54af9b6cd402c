#!/usr/bin/env node
// long_query.mjs — a client whose every request times out after 10 s (the official TypeScript
// MCP SDK's `timeout` request option) completes a 30-second query through its result_id:
// run_query answers "running" within the client's timeout, get_result is asked again until
// the rows arrive. Every structuredContent is checked by the SDK against the tool's
// outputSchema. Exit 0 with `LONG_QUERY_OK`; else `LONG_QUERY_FAIL: <reason>` and exit 1.
//
// USAGE  NODE_PATH=<node_modules with the SDK> node long_query.mjs <url> <seconds>
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// ES modules ignore NODE_PATH: import the SDK's ES build from there by path.
const sdk = (sub) =>
  import(pathToFileURL(path.join(process.env.NODE_PATH ?? 'node_modules', '@modelcontextprotocol/sdk/dist/esm', sub)).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');

const [url, seconds] = process.argv.slice(2);
const TIMEOUT_MS = 10_000;

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function call(client, name, args) {
  const started = Date.now();
  const r = await client.callTool({ name, arguments: args }, undefined, { timeout: TIMEOUT_MS });
  check(!r.isError, `${name}: ${JSON.stringify(r.content)}`);
  check(Date.now() - started < TIMEOUT_MS, `${name} took longer than the client waits`);
  return r.structuredContent;
}

try {
  const client = new Client({ name: 'long-query-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  const started = Date.now();
  // The model asks for its answer within the client's limit (the server's default bound,
  // 20 s, is for clients that wait a minute).
  let answer = await call(client, 'run_query', { sql: `SELECT SYSTEM$WAIT(${seconds})`, wait_secs: 5 });
  check(answer.status === 'running' && answer.result_id, `first answer: ${JSON.stringify(answer)}`);
  const id = answer.result_id;
  let polls = 0;
  while (answer.status === 'running') {
    polls += 1;
    check(polls < 20, 'too many polls');
    answer = await call(client, 'get_result', { result_id: id, wait_secs: 5 });
  }
  check(JSON.stringify(answer.rows) === JSON.stringify([[`waited ${seconds} seconds`]]), `rows: ${JSON.stringify(answer)}`);
  const took = (Date.now() - started) / 1000;
  check(took >= Number(seconds) - 1, `answered after ${took} s, before the statement could end`);
  console.error(`long_query: ${seconds} s statement read after ${polls} polls, ${took.toFixed(1)} s`);
  await client.close();
  console.log('LONG_QUERY_OK');
} catch (e) {
  console.error(`LONG_QUERY_FAIL: ${e?.stack ?? e}`);
  process.exit(1);
}
