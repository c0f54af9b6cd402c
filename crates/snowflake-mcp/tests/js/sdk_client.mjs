#!/usr/bin/env node
// sdk_client.mjs — drive snowflake-mcp with the OFFICIAL TypeScript MCP SDK
// client (@modelcontextprotocol/sdk, exact version pinned in package.json)
// and assert how the server behaves for a real third-party client.
//
// Node 20+, plain ES module, no build step. Exit code 0 and a last stdout line
// `SDK_CLIENT_OK <mode>` on success; on any failure a line
// `SDK_CLIENT_FAIL <mode>: <reason>` on stderr and exit code 1 (2 for usage).
//
// USAGE
//   node sdk_client.mjs http    <url> [token]                 [options]
//   node sdk_client.mjs stdio   <binary> [server args...]     [options]
//   node sdk_client.mjs connect <binary> <url> <token> [extra connect args...] [options]
//
//   http     StreamableHTTPClientTransport to <url> (e.g. http://127.0.0.1:8765/mcp);
//            sends `Authorization: Bearer <token>` when a token is given.
//            At the end the session is DELETEd (transport.terminateSession()) and
//            the old session id must then be answered with HTTP 404.
//   stdio    StdioClientTransport spawning `<binary> <server args...>`,
//            e.g. `stdio /path/snowflake-mcp stdio --demo --state /tmp/x.db`.
//   connect  StdioClientTransport spawning `<binary> connect <url> [extra...]`
//            with SNOWFLAKE_MCP_TOKEN=<token> (the bridge to a running `serve`).
//   Spawned processes get the SDK's default environment (HOME, LOGNAME, PATH,
//   SHELL, TERM, USER) plus SNOWFLAKE_MCP_CACHE, SNOWFLAKE_HOME, RUST_LOG,
//   RUST_BACKTRACE and LLVM_PROFILE_FILE when set. Their stderr is inherited.
//
// OPTIONS (recognised anywhere on the command line, also among stdio's server
// args; none of them collides with a snowflake-mcp flag):
//   --expect-rate-limit  the client is rate limited to a few calls a minute:
//                        `run_query SELECT 1` repeatedly until a tool error of
//                        kind `rate_limited` with a numeric
//                        _meta.error.retry_after_ms arrives (within 20 calls).
//   --expect-quota       the client has a small daily query quota: same, until
//                        kind `quota_exceeded` (rate_limited answers met on the
//                        way are waited out, honouring retry_after_ms).
//                        Either limit flag skips the common scenario (it makes
//                        far more calls than a limited client may).
//   --cancel             start a long run_query, abort it via AbortSignal after
//                        ~300 ms; the SDK must reject within 5 s, the next
//                        call on the same client must work (within 5 s), and
//                        the server must stop executing the statement (see
//                        --server-pid).
//   --resume             (http, connect) after the common scenario and
//                        `set_context {schema:"SALES"}`, print READY_FOR_RESTART
//                        on stdout and wait for a line RESTARTED on stdin; then,
//                        on the same client/transport (same session id), the
//                        context must still be SALES and run_query must work.
//   --server-pid=PID     (with --cancel) the serving process, to check that it
//                        stops executing the cancelled statement: its CPU time
//                        (from /proc) must stay low in a 2 s window after the
//                        abort. In stdio mode the spawned child's pid is used
//                        automatically; in http/connect mode the check is
//                        skipped (with a note) unless this option is given.
//   --calls=FILE         a JSON list of {"tool", "arguments", "expect"?} calls that
//                        must all succeed, the SDK validating each structuredContent
//                        against the tool's outputSchema; `expect` (optional) is an
//                        object whose keys must equal the same keys of the result
//                        (e.g. {"row_count": 0}). Runs after the common scenario.
//   --no-common          skip the common scenario (tools are still listed).
//   --timeout=SECS       overall watchdog, default 240.
//   --oauth              (http, no token) sign in the way MCP clients do: the first
//                        connect must fail with the SDK's UnauthorizedError after the
//                        SDK found the authorization server through the server's 401
//                        and RFC 9728 metadata and sent the "browser" to it; the
//                        authorization code the (test) identity provider redirects
//                        back with is exchanged (PKCE) and the client connects again
//                        with the access token.
//   --expect-unauthorized  (http) the token must be refused: connect must fail with
//                        HTTP 401/403 (the SDK's UnauthorizedError or a 401/403 error).
//
// COMMON SCENARIO (needs the offline demo backend: DEMO.SALES.CUSTOMERS etc.)
//   listTools -> exactly the 8 tools, each with an outputSchema; every tool is
//   called successfully (the SDK validates structuredContent against the
//   outputSchema and throws if it does not match); then errors are provoked and
//   each must be a readable tool error: isError true, no structuredContent,
//   first text content `<kind>: <message>`, _meta.error = {kind, message, ...}.
//   An unknown tool must instead be a JSON-RPC error: the SDK throws McpError
//   with code -32602 (Invalid params, as MCP specifies; -32601 is tolerated),
//   in every mode, i.e. the `connect` bridge must pass it through unchanged.
//
// FINDING THE SDK
//   Normal ESM resolution (a node_modules next to / above this file) is tried
//   first. ESM ignores NODE_PATH, so if that fails this script resolves the
//   SDK itself from each directory listed in $SDK_CLIENT_NODE_MODULES and then
//   $NODE_PATH (path-delimiter separated lists of node_modules directories),
//   using the package's "exports" map. So a harness keeping node_modules in a
//   cache dir only needs:
//     cp tests/js/package.json tests/js/package-lock.json <cache>/js/
//     npm ci --prefix <cache>/js --no-audit --no-fund
//     NODE_PATH=<cache>/js/node_modules node tests/js/sdk_client.mjs <mode> ...

import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';

// ---------------------------------------------------------------- arguments

const FLAG_NAMES = new Set([
  '--expect-rate-limit',
  '--expect-quota',
  '--cancel',
  '--resume',
  '--no-common',
  '--oauth',
  '--expect-unauthorized',
]);
const opts = { timeoutS: 240 };
const positional = [];
for (const a of process.argv.slice(2)) {
  if (FLAG_NAMES.has(a)) opts[a.slice(2)] = true;
  else if (a.startsWith('--timeout=')) opts.timeoutS = Number(a.slice('--timeout='.length));
  else if (a.startsWith('--server-pid=')) opts.serverPid = Number(a.slice('--server-pid='.length));
  else if (a.startsWith('--calls=')) opts.calls = a.slice('--calls='.length);
  else positional.push(a);
}
const mode = positional[0] ?? '';

function usage(msg) {
  process.stderr.write(
    `sdk_client: ${msg}\n` +
      'usage: node sdk_client.mjs http <url> [token] [options]\n' +
      '       node sdk_client.mjs stdio <binary> [server args...] [options]\n' +
      '       node sdk_client.mjs connect <binary> <url> <token> [connect args...] [options]\n' +
      'options: --expect-rate-limit --expect-quota --cancel --resume --no-common\n' +
      '         --server-pid=PID --timeout=SECS\n',
  );
  process.exit(2);
}

if (!['http', 'stdio', 'connect'].includes(mode)) usage(`unknown mode '${mode}'`);
if (mode === 'http' && (positional.length < 2 || positional.length > 3)) usage('http needs <url> [token]');
if (mode === 'stdio' && positional.length < 2) usage('stdio needs <binary> [args...]');
if (mode === 'connect' && positional.length < 4) usage('connect needs <binary> <url> <token>');
if (mode === 'stdio' && opts.resume) usage('--resume needs a server that can be restarted (http or connect)');
if (!(opts.timeoutS > 0)) usage('--timeout=SECS needs a positive number');
if (opts.serverPid !== undefined && !(Number.isInteger(opts.serverPid) && opts.serverPid > 0)) {
  usage('--server-pid=PID needs a process id');
}

// ---------------------------------------------------------------- reporting

class TestFailure extends Error {}

function log(msg) {
  process.stdout.write(`sdk_client[${mode}]: ${msg}\n`);
}
function fail(msg) {
  throw new TestFailure(msg);
}
function check(cond, msg) {
  if (!cond) fail(msg);
}
function die(msg) {
  process.stderr.write(`SDK_CLIENT_FAIL ${mode}: ${msg}\n`);
  process.exit(1);
}
const j = (v) => {
  const s = JSON.stringify(v);
  return s && s.length > 600 ? s.slice(0, 600) + '…' : s;
};

// The client in use, closed (best effort, at most ~5 s) before exiting on a
// failure, so that a spawned server (stdio, connect) does not outlive us.
let activeClient = null;
async function closeQuietly() {
  const c = activeClient;
  activeClient = null;
  if (c) await Promise.race([c.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000).unref())]);
}

const watchdog = setTimeout(() => {
  const msg = `timed out after ${opts.timeoutS} s (watchdog; see the last progress line above)`;
  closeQuietly().finally(() => die(msg));
}, opts.timeoutS * 1000);
watchdog.unref();

// ---------------------------------------------------------------- SDK import

function nodeModulesDirs() {
  const dirs = [];
  for (const v of [process.env.SDK_CLIENT_NODE_MODULES, process.env.NODE_PATH]) {
    if (v) dirs.push(...v.split(path.delimiter).filter(Boolean));
  }
  return dirs;
}

// Resolve "@modelcontextprotocol/sdk/<sub>" inside one node_modules directory
// through the package's exports map ("import" condition), as Node would.
function resolveInDir(dir, sub) {
  const pkgDir = path.resolve(dir, '@modelcontextprotocol', 'sdk');
  const pkgJson = path.join(pkgDir, 'package.json');
  if (!existsSync(pkgJson)) return null;
  const exportsMap = JSON.parse(readFileSync(pkgJson, 'utf8')).exports ?? {};
  const key = `./${sub}`;
  const pick = (entry) => (typeof entry === 'string' ? entry : entry?.import ?? entry?.default);
  let target = exportsMap[key] !== undefined ? pick(exportsMap[key]) : undefined;
  if (target === undefined) {
    for (const [pattern, entry] of Object.entries(exportsMap)) {
      const star = pattern.indexOf('*');
      if (star < 0) continue;
      const pre = pattern.slice(0, star);
      const post = pattern.slice(star + 1);
      if (key.startsWith(pre) && key.endsWith(post) && key.length >= pre.length + post.length) {
        const t = pick(entry);
        if (t) target = t.replace('*', key.slice(pre.length, key.length - post.length));
        break;
      }
    }
  }
  if (!target) return null;
  const file = path.join(pkgDir, target);
  return existsSync(file) ? pathToFileURL(file).href : null;
}

async function importSdk(sub) {
  try {
    return await import(`@modelcontextprotocol/sdk/${sub}`);
  } catch (e) {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' && e?.code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw e;
    for (const dir of nodeModulesDirs()) {
      const url = resolveInDir(dir, sub);
      if (url) return await import(url);
    }
    die(
      `cannot find @modelcontextprotocol/sdk/${sub}: install tests/js/package.json ` +
        `(npm ci) and put its node_modules next to this script or in NODE_PATH / SDK_CLIENT_NODE_MODULES ` +
        `(searched: ${nodeModulesDirs().join(', ') || 'nothing'}); original error: ${e.message}`,
    );
  }
}

const { Client } = await importSdk('client/index.js');
const { StreamableHTTPClientTransport } = await importSdk('client/streamableHttp.js');
const { StdioClientTransport, getDefaultEnvironment } = await importSdk('client/stdio.js');
const { McpError } = await importSdk('types.js');
const { UnauthorizedError } = await importSdk('client/auth.js');

// ---------------------------------------------------------------- helpers

const EXPECTED_TOOLS = [
  'cancel_query',
  'describe_object',
  'explain_query',
  'fetch_rows',
  'get_context',
  'get_result',
  'list_databases',
  'list_objects',
  'list_schemas',
  'query_history',
  'run_query',
  'set_context',
];
const LONG_QUERY =
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300000000) SELECT COUNT(*) FROM c';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function errText(e) {
  const name = e?.constructor?.name ?? typeof e;
  const code = e?.code !== undefined ? ` (code ${e.code})` : '';
  const cause = e?.cause ? ` (cause: ${e.cause?.code ?? ''} ${e.cause?.message ?? String(e.cause)})` : '';
  return `${name}${code}: ${e?.message ?? String(e)}${cause}`;
}

function firstText(result) {
  const c = Array.isArray(result?.content) ? result.content[0] : undefined;
  return c?.type === 'text' ? c.text : undefined;
}

// A call that must succeed. The SDK validates structuredContent against the
// tool's outputSchema (cached by listTools) and throws McpError if it does not
// match or is missing; turn that into a precise failure.
async function callOk(client, name, args = {}, options) {
  let result;
  try {
    result = await client.callTool({ name, arguments: args }, undefined, options);
  } catch (e) {
    const m = String(e?.message ?? e);
    if (/output schema|structured content/i.test(m)) {
      fail(`${name} ${j(args)}: the SDK rejected the result against the tool's outputSchema: ${errText(e)}`);
    }
    fail(`${name} ${j(args)}: call threw ${errText(e)}`);
  }
  if (result.isError) fail(`${name} ${j(args)}: expected success, got tool error ${j(result)}`);
  check(
    result.structuredContent && typeof result.structuredContent === 'object' && !Array.isArray(result.structuredContent),
    `${name} ${j(args)}: success without a structuredContent object: ${j(result)}`,
  );
  check(typeof firstText(result) === 'string', `${name} ${j(args)}: no text content: ${j(result)}`);
  check(result._meta?.error === undefined, `${name} ${j(args)}: success carries _meta.error: ${j(result)}`);
  return result.structuredContent;
}

// Check the shape of a tool error result; returns _meta.error.
function checkErrorShape(what, result, expectedKind) {
  check(result && typeof result === 'object', `${what}: no result`);
  check(result.isError === true, `${what}: expected isError: true, got ${j(result)}`);
  check(
    result.structuredContent === undefined,
    `${what}: an error result must not carry structuredContent, got ${j(result)}`,
  );
  const meta = result._meta?.error;
  check(
    meta && typeof meta === 'object' && !Array.isArray(meta),
    `${what}: _meta.error missing or not an object: ${j(result)}`,
  );
  check(typeof meta.kind === 'string' && /^[a-z][a-z_]*$/.test(meta.kind), `${what}: bad _meta.error.kind in ${j(meta)}`);
  check(typeof meta.message === 'string' && meta.message.length > 0, `${what}: bad _meta.error.message in ${j(meta)}`);
  if (expectedKind) {
    check(meta.kind === expectedKind, `${what}: expected kind '${expectedKind}', got '${meta.kind}' (${j(meta)})`);
  }
  const text = firstText(result);
  check(typeof text === 'string', `${what}: first content item is not text: ${j(result.content)}`);
  check(
    text.startsWith(`${meta.kind}: `),
    `${what}: first text content should start with '${meta.kind}: ', got ${j(text)}`,
  );
  return meta;
}

// A call that must come back as a tool error (never a thrown exception).
async function callErr(client, name, args, expectedKind) {
  const what = `${name} ${j(args)}`;
  let result;
  try {
    result = await client.callTool({ name, arguments: args });
  } catch (e) {
    fail(`${what}: expected a tool error result (isError), but the SDK threw ${errText(e)}`);
  }
  const meta = checkErrorShape(what, result, expectedKind);
  log(`ok   ${what} -> ${meta.kind}: ${meta.message}`);
  return meta;
}

// ---------------------------------------------------------------- scenarios

async function listToolsScenario(client) {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  check(
    j(names) === j(EXPECTED_TOOLS),
    `listTools: expected exactly ${j(EXPECTED_TOOLS)}, got ${j(names)}`,
  );
  for (const t of tools) {
    check(t.inputSchema?.type === 'object', `listTools: ${t.name} has no object inputSchema`);
    check(
      t.outputSchema && typeof t.outputSchema === 'object' && t.outputSchema.type === 'object',
      `listTools: ${t.name} has no object outputSchema: ${j(t.outputSchema)}`,
    );
  }
  log(`ok   listTools -> ${names.length} tools, each with an outputSchema`);
}

async function commonScenario(client) {
  // --- every tool, successfully
  const dbs = await callOk(client, 'list_databases');
  check(dbs.databases.some((d) => d.name === 'DEMO'), `list_databases: no DEMO in ${j(dbs)}`);
  log('ok   list_databases');

  const schemas = await callOk(client, 'list_schemas', { database: 'DEMO' });
  check(schemas.schemas.some((s) => s.name === 'SALES'), `list_schemas: no SALES in ${j(schemas)}`);
  log('ok   list_schemas');

  const objs = await callOk(client, 'list_objects', { schema: 'SALES' });
  const objNames = objs.objects.map((o) => o.name);
  check(objNames.includes('CUSTOMERS'), `list_objects: no CUSTOMERS in ${j(objNames)}`);
  const cust = await callOk(client, 'list_objects', { pattern: 'CUST%', kind: 'table' });
  check(
    j(cust.objects.map((o) => o.name)) === j(['CUSTOMERS']),
    `list_objects pattern CUST%: expected only CUSTOMERS, got ${j(cust)}`,
  );
  log(`ok   list_objects -> ${objNames.join(', ')}`);

  const desc = await callOk(client, 'describe_object', { name: 'CUSTOMERS' });
  check(/CUSTOMERS$/.test(desc.name), `describe_object: unexpected name ${j(desc.name)}`);
  check(desc.columns.length > 0, `describe_object: no columns in ${j(desc)}`);
  log(`ok   describe_object -> ${desc.name} (${desc.columns.length} columns)`);

  const setc = await callOk(client, 'set_context', { schema: 'SALES' });
  check(setc.schema === 'SALES', `set_context: expected schema SALES, got ${j(setc)}`);
  log('ok   set_context {schema: SALES}');

  const ctx = await callOk(client, 'get_context');
  check(ctx.database === 'DEMO' && ctx.schema === 'SALES', `get_context: expected DEMO.SALES, got ${j(ctx)}`);
  log(`ok   get_context -> ${ctx.database}.${ctx.schema} warehouse=${ctx.warehouse} role=${ctx.role}`);

  const count = await callOk(client, 'run_query', { sql: 'SELECT COUNT(*) AS N FROM CUSTOMERS' });
  check(
    count.row_count === 1 && Number(count.rows?.[0]?.[0]) === 1000 && count.truncated === false,
    `run_query COUNT(*): expected one row with 1000, got ${j(count)}`,
  );
  const capped = await callOk(client, 'run_query', { sql: 'SELECT * FROM CUSTOMERS', max_rows: 5 });
  check(
    capped.row_count === 5 && capped.rows.length === 5 && capped.truncated === true,
    `run_query max_rows 5: expected 5 rows, truncated, got ${j(capped)}`,
  );
  log('ok   run_query (count, capped)');

  const hist = await callOk(client, 'query_history', { limit: 10 });
  check(
    hist.queries.some((q) => typeof q.sql === 'string' && q.sql.includes('COUNT(*) AS N FROM CUSTOMERS')),
    `query_history: the COUNT(*) query is missing from ${j(hist)}`,
  );
  log(`ok   query_history -> ${hist.queries.length} entries`);

  // --- readable tool errors
  await callErr(client, 'run_query', { sql: 'DELETE FROM CUSTOMERS' }, 'not_allowed');
  await callOk(client, 'set_context', { schema: 'SALES' });
  await callErr(client, 'run_query', { sql: 'SELECT NO_SUCH_COLUMN FROM CUSTOMERS' }, 'sql_error');
  await callErr(client, 'describe_object', { name: 'NO_SUCH_TABLE' }, 'not_found');
  await callErr(client, 'set_context', { database: 'NOPE' }, 'not_found');
  const after = await callOk(client, 'get_context');
  check(
    after.database === 'DEMO' && after.schema === 'SALES',
    `get_context after a failed set_context: context changed to ${j(after)}`,
  );
  await callErr(client, 'run_query', { sql: 'SELECT 1', max_rows: -1 }, 'invalid_argument');
  await callErr(client, 'run_query', { sql: '' }, 'not_allowed');

  // --- an unknown tool is a JSON-RPC (protocol) error: the SDK throws McpError
  let threw = null;
  try {
    const r = await client.callTool({ name: 'no_such_tool', arguments: {} });
    fail(`unknown tool: expected the SDK to throw McpError, got a result ${j(r)}`);
  } catch (e) {
    if (e instanceof TestFailure) throw e;
    threw = e;
  }
  check(threw instanceof McpError, `unknown tool: expected McpError, got ${errText(threw)}`);
  // MCP says an unknown tool is "Invalid params" (-32602); -32601 is tolerated.
  // Not -32603 (internal error): a bridge must pass the server's error through.
  check(
    threw.code === -32602 || threw.code === -32601,
    `unknown tool: expected JSON-RPC error -32602 (or -32601), got ${errText(threw)}`,
  );
  log(`ok   unknown tool -> thrown ${errText(threw)}`);

  // the client is still usable after a protocol error
  await callOk(client, 'get_context');
}

async function rateLimitScenario(client) {
  for (let i = 1; i <= 20; i++) {
    let r;
    try {
      r = await client.callTool({ name: 'run_query', arguments: { sql: 'SELECT 1' } });
    } catch (e) {
      fail(`rate limit: call ${i} threw ${errText(e)} (expected a result)`);
    }
    if (!r.isError) {
      log(`     rate limit: call ${i} succeeded`);
      continue;
    }
    const meta = checkErrorShape(`rate limit: call ${i}`, r, null);
    check(meta.kind === 'rate_limited', `rate limit: call ${i}: expected kind rate_limited, got ${j(meta)}`);
    check(
      typeof meta.retry_after_ms === 'number' && Number.isFinite(meta.retry_after_ms) && meta.retry_after_ms >= 0,
      `rate limit: _meta.error.retry_after_ms must be a non-negative number, got ${j(meta)}`,
    );
    log(`ok   rate limited at call ${i}: retry_after_ms=${meta.retry_after_ms} (${meta.message})`);
    return;
  }
  fail('rate limit: 20 calls of run_query SELECT 1 and no rate_limited error');
}

async function quotaScenario(client) {
  for (let i = 1; i <= 20; i++) {
    let r;
    try {
      r = await client.callTool({ name: 'run_query', arguments: { sql: 'SELECT 1' } });
    } catch (e) {
      fail(`quota: call ${i} threw ${errText(e)} (expected a result)`);
    }
    if (!r.isError) {
      log(`     quota: call ${i} succeeded`);
      continue;
    }
    const meta = checkErrorShape(`quota: call ${i}`, r, null);
    if (meta.kind === 'rate_limited') {
      const wait = Math.min(Number(meta.retry_after_ms) || 1000, 65000) + 100;
      log(`     quota: call ${i} rate limited, waiting ${wait} ms`);
      await sleep(wait);
      continue;
    }
    check(meta.kind === 'quota_exceeded', `quota: call ${i}: expected kind quota_exceeded, got ${j(meta)}`);
    if (meta.retry_after_ms !== undefined) {
      check(
        typeof meta.retry_after_ms === 'number' && meta.retry_after_ms >= 0,
        `quota: retry_after_ms present but not a non-negative number: ${j(meta)}`,
      );
    }
    log(`ok   quota exceeded at call ${i}: ${j(meta)}`);
    return;
  }
  fail('quota: 20 calls of run_query SELECT 1 and no quota_exceeded error');
}

// CPU time (user + system) of a process in ms, from /proc; null if unreadable.
function cpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15, in clock ticks
    // (USER_HZ, 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
}

async function cancelScenario(client, serverPid) {
  const ac = new AbortController();
  const t0 = Date.now();
  const pending = client.callTool({ name: 'run_query', arguments: { sql: LONG_QUERY } }, undefined, {
    signal: ac.signal,
    timeout: 600_000,
  });
  const timer = setTimeout(() => ac.abort(new Error('cancelled by sdk_client test')), 300);
  let outcome;
  try {
    const r = await pending;
    outcome = { result: r };
  } catch (e) {
    outcome = { error: e };
  }
  clearTimeout(timer);
  const elapsed = Date.now() - t0;
  if (outcome.result) {
    fail(`cancel: the long query was not cancelled; it returned after ${elapsed} ms: ${j(outcome.result)}`);
  }
  check(ac.signal.aborted, `cancel: the call failed before the abort, after ${elapsed} ms: ${errText(outcome.error)}`);
  check(elapsed < 5000, `cancel: the SDK rejected only after ${elapsed} ms (limit 5000)`);
  log(`ok   cancel: rejected ${elapsed} ms after the start (${errText(outcome.error)})`);

  // The same client must still work, promptly (a server that serialised a
  // session's calls behind the abandoned statement would show up here).
  const t1 = Date.now();
  const one = await callOk(client, 'run_query', { sql: 'SELECT 1 AS ONE' });
  const took = Date.now() - t1;
  check(Number(one.rows?.[0]?.[0]) === 1, `cancel: follow-up SELECT 1 returned ${j(one)}`);
  check(took < 5000, `cancel: follow-up call took ${took} ms (limit 5000): the aborted query still blocks`);
  log(`ok   cancel: follow-up run_query took ${took} ms`);

  // Is the server still executing the abandoned statement? A busy statement
  // burns a core; an idle server uses next to no CPU.
  if (serverPid && cpuMs(serverPid) !== null) {
    await sleep(500);
    const WINDOW = 2000;
    const since = Date.now() - t0;
    const c0 = cpuMs(serverPid);
    await sleep(WINDOW);
    const c1 = cpuMs(serverPid);
    check(c0 !== null && c1 !== null, `cancel: server process ${serverPid} went away during the CPU check`);
    const used = c1 - c0;
    check(
      used < WINDOW * 0.2,
      `cancel: the server (pid ${serverPid}) used ${used} ms of CPU in the ${WINDOW} ms window starting ` +
        `${since} ms after the call began: it is still executing the cancelled ` +
        'statement (the cancellation did not reach the database)',
    );
    log(`ok   cancel: server pid ${serverPid} used ${used} ms CPU in ${WINDOW} ms after the abort (idle)`);
  } else {
    log('     cancel: server-side CPU check skipped (no --server-pid, or /proc unreadable)');
  }

  // The aborted statement is in query_history, as cancelled (its record is written when the
  // server drops the call: wait for it, with a deadline).
  const deadline = Date.now() + 10_000;
  let entry;
  for (;;) {
    const hist = await callOk(client, 'query_history', { limit: 5 });
    entry = hist.queries.find((q) => typeof q.sql === 'string' && q.sql.startsWith('WITH RECURSIVE'));
    if (entry || Date.now() > deadline) break;
    await sleep(100);
  }
  check(entry, 'cancel: the aborted query is missing from query_history');
  check(entry.status === 'cancelled', `cancel: the aborted query's history entry is ${j(entry)}, expected status cancelled`);
  log(`ok   cancel: query_history has the aborted query as cancelled`);
}

function waitForLine(expected) {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin });
    let done = false;
    rl.on('line', (line) => {
      if (line.trim() === expected) {
        done = true;
        rl.close();
        resolve();
      }
    });
    rl.on('close', () => {
      if (!done) reject(new TestFailure(`stdin closed before a line '${expected}' arrived`));
    });
  });
}

async function resumeScenario(client, transport) {
  const setc = await callOk(client, 'set_context', { schema: 'SALES' });
  check(setc.schema === 'SALES', `resume: set_context returned ${j(setc)}`);
  const marker = `resume-marker-${process.pid}-${Date.now()}`;
  await callOk(client, 'run_query', { sql: `SELECT '${marker}' AS M` });
  const sessionBefore = transport.sessionId;
  log(`     resume: session id before restart: ${sessionBefore ?? '(not visible in this mode)'}`);
  process.stdout.write('READY_FOR_RESTART\n');
  await waitForLine('RESTARTED');
  log('     resume: got RESTARTED');

  if (mode === 'http') {
    check(
      transport.sessionId === sessionBefore,
      `resume: transport session id changed from ${sessionBefore} to ${transport.sessionId}`,
    );
  }
  const ctx = await callOk(client, 'get_context');
  check(ctx.schema === 'SALES', `resume: get_context after restart: expected schema SALES, got ${j(ctx)}`);
  const count = await callOk(client, 'run_query', { sql: 'SELECT COUNT(*) FROM CUSTOMERS' });
  check(Number(count.rows?.[0]?.[0]) === 1000, `resume: run_query after restart returned ${j(count)}`);
  const hist = await callOk(client, 'query_history', { limit: 20 });
  const before = hist.queries.find((q) => typeof q.sql === 'string' && q.sql.includes(marker));
  check(before, `resume: the query run before the restart is missing from query_history: ${j(hist)}`);
  check(before.status === 'ok', `resume: the pre-restart query's history entry is ${j(before)}, expected status ok`);
  log(`ok   resume: same session (${transport.sessionId ?? 'bridge'}), schema SALES, run_query works; ` +
      'the pre-restart query is in query_history');
  if (mode === 'http') {
    check(transport.sessionId === sessionBefore, 'resume: session id changed during the calls after the restart');
  }
}

async function terminateScenario(transport, url, token) {
  const sid = transport.sessionId;
  check(typeof sid === 'string' && sid.length > 0, 'http: no session id was assigned by the server');
  try {
    await transport.terminateSession();
  } catch (e) {
    fail(`DELETE of session ${sid} failed: ${errText(e)}`);
  }
  // The SDK treats 405 (DELETE not supported) as success: check that the
  // session is really gone — the spec says 404 for a terminated session id.
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-session-id': sid,
    'mcp-protocol-version': transport.protocolVersion ?? '2025-06-18',
  };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/list', params: {} }),
  });
  const body = await res.text();
  check(
    res.status === 404,
    `after DELETE, a request with session id ${sid} should get HTTP 404, got ${res.status}: ${body.slice(0, 300)}`,
  );
  log(`ok   DELETE session ${sid}; the old id now gets 404`);
}

// ---------------------------------------------------------------- main

function childEnv(extra = {}) {
  const env = { ...getDefaultEnvironment() };
  for (const k of ['SNOWFLAKE_MCP_CACHE', 'SNOWFLAKE_HOME', 'RUST_LOG', 'RUST_BACKTRACE', 'LLVM_PROFILE_FILE']) {
    if (process.env[k] !== undefined) env[k] = process.env[k];
  }
  return { ...env, ...extra };
}

// Every call listed in `file` succeeds and its result passes the SDK's outputSchema check.
async function callsScenario(client, file) {
  const calls = JSON.parse(readFileSync(file, 'utf8'));
  check(Array.isArray(calls) && calls.length > 0, `--calls: ${file} holds no list of calls`);
  for (const { tool, arguments: args, expect } of calls) {
    const got = await callOk(client, tool, args ?? {});
    for (const [key, want] of Object.entries(expect ?? {})) {
      check(j(got[key]) === j(want), `${tool} ${j(args)}: ${key} is ${j(got[key])}, expected ${j(want)}`);
    }
    log(`ok   ${tool} ${j(args)} (validated against its outputSchema)`);
  }
}

// The OAuth flow an MCP client runs, with the SDK's own discovery and token exchange; the
// "browser" follows the identity provider's redirect without showing anything.
async function signIn(url) {
  let pendingCode;
  const store = {};
  const provider = {
    get redirectUrl() { return 'http://127.0.0.1:9/callback'; },
    get clientMetadata() {
      return { client_name: 'snowflake-mcp-sdk-test', redirect_uris: ['http://127.0.0.1:9/callback'],
        grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'none' };
    },
    clientInformation: () => ({ client_id: 'sdk-test' }),
    tokens: () => store.tokens,
    saveTokens: (t) => { store.tokens = t; },
    codeVerifier: () => store.verifier,
    saveCodeVerifier: (v) => { store.verifier = v; },
    redirectToAuthorization: async (authUrl) => {
      const r = await fetch(authUrl, { redirect: 'manual' });
      const location = r.headers.get('location');
      check(location, `the identity provider did not redirect back (HTTP ${r.status})`);
      pendingCode = new URL(location).searchParams.get('code');
    },
  };
  const first = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  const probe = new Client({ name: 'snowflake-mcp-sdk-test', version: '1.0.0' });
  try {
    await probe.connect(first);
    fail('connected without signing in');
  } catch (e) {
    check(e instanceof UnauthorizedError, `expected UnauthorizedError first, got ${errText(e)}`);
  }
  check(pendingCode, 'the SDK never sent the browser to the authorization server');
  await first.finishAuth(pendingCode);
  check(store.tokens?.access_token, 'no access token after the code exchange');
  log('ok   signed in: discovery from the 401 and metadata, code + PKCE exchanged for a token');
  return {
    transport: new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }),
    token: store.tokens.access_token,
  };
}

async function main() {
  let transport;
  let url;
  let token;
  if (mode === 'http' && opts.oauth) {
    url = positional[1];
    ({ transport, token } = await signIn(url));
  } else if (mode === 'http') {
    url = positional[1];
    token = positional[2];
    transport = new StreamableHTTPClientTransport(new URL(url), {
      requestInit: token ? { headers: { Authorization: `Bearer ${token}` } } : undefined,
    });
    if (opts['expect-unauthorized']) {
      const probe = new Client({ name: 'snowflake-mcp-sdk-test', version: '1.0.0' });
      try {
        await probe.connect(transport);
      } catch (e) {
        const text = errText(e);
        check(e instanceof UnauthorizedError || /\b(401|403)\b/.test(text), `refused, but not with 401/403: ${text}`);
        log(`ok   the token was refused: ${text}`);
        process.stdout.write(`SDK_CLIENT_OK ${mode}\n`);
        process.exit(0);
      }
      fail('a bad token was accepted');
    }
  } else if (mode === 'stdio') {
    transport = new StdioClientTransport({
      command: positional[1],
      args: positional.slice(2),
      env: childEnv(),
      stderr: 'inherit',
    });
  } else {
    transport = new StdioClientTransport({
      command: positional[1],
      args: ['connect', positional[2], ...positional.slice(4)],
      env: childEnv({ SNOWFLAKE_MCP_TOKEN: positional[3] }),
      stderr: 'inherit',
    });
  }

  const client = new Client({ name: 'snowflake-mcp-sdk-test', version: '1.0.0' });
  activeClient = client;
  // Transport-level errors (e.g. the SDK's background SSE stream breaking while
  // the server restarts) are reported, not fatal: the asserted calls decide.
  client.onerror = (e) => log(`     (client onerror: ${errText(e)})`);
  try {
    await client.connect(transport);
  } catch (e) {
    fail(`connect/initialize failed: ${errText(e)}`);
  }
  const sv = client.getServerVersion();
  log(`connected to ${sv?.name} ${sv?.version}` + (transport.sessionId ? `, session ${transport.sessionId}` : ''));
  check(client.getServerCapabilities()?.tools, `server does not advertise the tools capability: ${j(client.getServerCapabilities())}`);

  await listToolsScenario(client);
  const limited = opts['expect-rate-limit'] || opts['expect-quota'];
  if (!opts['no-common'] && !limited) await commonScenario(client);
  if (opts.calls) await callsScenario(client, opts.calls);
  if (opts['expect-rate-limit']) await rateLimitScenario(client);
  if (opts['expect-quota']) await quotaScenario(client);
  if (opts.cancel) {
    await cancelScenario(client, opts.serverPid ?? (mode === 'stdio' ? transport.pid : undefined));
  }
  if (opts.resume) await resumeScenario(client, transport);
  if (mode === 'http') await terminateScenario(transport, url, token);

  activeClient = null;
  const tc = Date.now();
  await client.close();
  const closeMs = Date.now() - tc;
  if (mode !== 'http') {
    // The SDK ends the child's stdin, waits 2 s, then sends SIGTERM (and SIGKILL 2 s later).
    log(
      closeMs >= 1900
        ? `     note: the spawned process did not exit within 2 s of its stdin closing (close took ${closeMs} ms)`
        : `ok   the spawned process exited ${closeMs} ms after its stdin closed`,
    );
  }
  process.stdout.write(`SDK_CLIENT_OK ${mode}\n`);
}

try {
  await main();
  process.exit(0);
} catch (e) {
  await closeQuietly();
  die(e instanceof TestFailure ? e.message : `unexpected exception: ${e?.stack ?? errText(e)}`);
}
