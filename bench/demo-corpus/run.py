#!/usr/bin/env python3
"""Measure how many everyday Snowflake queries `snowflake-mcp serve --demo` answers correctly.

Usage:
    python3 bench/demo-corpus/run.py --server PATH/TO/snowflake-mcp [--only ID[,ID...]] [--verbose]
    python3 bench/demo-corpus/run.py --check-references      # only run the DuckDB references

The harness starts the server on a free local port with a fresh cache directory, speaks MCP
Streamable HTTP to it (standard library only), runs every query of queries.json through the
`run_query` tool, computes the expected answer of each with DuckDB over the very data the server
generated (the demo-v*.sqlite file in that cache directory), compares, and prints one line per
failure and a summary. It is a measurement: the exit status is 0 whatever the score, and non-zero
only when the harness itself cannot run (no server, no DuckDB, a broken corpus file).

DuckDB comes from the fakesnow virtualenv that scripts/test-env.sh installs
(<cache>/venv/bin/python); when the current interpreter has no `duckdb`, the harness re-executes
itself under that one.
"""

import argparse
import csv
import datetime as dt
import decimal
import glob
import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "queries.json")
PROTOCOL_VERSION = "2025-11-25"
DEFAULT_TOLERANCE = 1e-9
MAX_ROWS = 10000


class HarnessError(Exception):
    """The harness itself cannot go on (as opposed to a query that failed)."""


# --------------------------------------------------------------------------------------------
# DuckDB: find it, or re-execute under the interpreter that has it


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "snowflake-mcp")


def cache_dir():
    return os.environ.get("SNOWFLAKE_MCP_CACHE") or default_cache_dir()


def ensure_duckdb():
    try:
        import duckdb  # noqa: F401
        return
    except ImportError:
        pass
    candidates = [os.path.join(d, "venv", "bin", "python") for d in (cache_dir(), default_cache_dir())]
    python = next((p for p in candidates if os.access(p, os.X_OK)), None)
    if os.environ.get("DEMO_CORPUS_REEXEC") or python is None:
        raise HarnessError(
            "the Python module duckdb is missing; run scripts/test-env.sh once (it installs DuckDB "
            f"into {os.path.dirname(os.path.dirname(candidates[0]))}) and try again")
    os.environ["DEMO_CORPUS_REEXEC"] = "1"
    os.execv(python, [python, os.path.abspath(__file__)] + sys.argv[1:])


# --------------------------------------------------------------------------------------------
# The reference side: the demo's SQLite file loaded into DuckDB

ORDER_TOTALS = """
CREATE VIEW order_totals AS
SELECT o.order_id, o.customer_id, o.order_date, SUM(i.quantity * p.unit_price) AS total
FROM orders o
JOIN order_items i ON i.order_id = o.order_id
JOIN products p ON p.product_id = i.product_id
GROUP BY o.order_id, o.customer_id, o.order_date
"""


def duck_type(declared):
    d = (declared or "").strip().upper()
    if d.startswith("INT") or d in ("BIGINT", "SMALLINT", "TINYINT"):
        return "INTEGER" if d.startswith("INT") else d
    m = re.match(r"(DECIMAL|NUMERIC|NUMBER)\s*\((\d+)\s*,\s*(\d+)\)", d)
    if m:
        return f"DECIMAL({m.group(2)},{m.group(3)})"
    if d.startswith(("DECIMAL", "NUMERIC", "NUMBER")):
        return "DECIMAL(38,0)"
    if d in ("REAL", "FLOAT", "DOUBLE") or d.startswith("DOUBLE"):
        return "DOUBLE"
    if d == "DATE":
        return "DATE"
    if d.startswith("TIMESTAMP") or d == "DATETIME":
        return "TIMESTAMP"
    if d in ("BOOLEAN", "BOOL"):
        return "BOOLEAN"
    return "VARCHAR"


def find_demo_file(directory):
    """The newest demo-v<N>.sqlite in `directory` (highest N), or None."""
    best = None
    for path in glob.glob(os.path.join(directory, "demo-v*.sqlite")):
        m = re.search(r"demo-v(\d+)\.sqlite$", path)
        key = (int(m.group(1)) if m else -1, os.path.getmtime(path))
        if best is None or key > best[0]:
            best = (key, path)
    return best[1] if best else None


def load_reference_db(sqlite_path, workdir):
    """An in-memory DuckDB with DEMO.SALES.<tables> (USE'd) and the ORDER_TOTALS view."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET threads TO 2")
    con.execute("ATTACH ':memory:' AS demo")
    con.execute("CREATE SCHEMA demo.sales")
    con.execute("USE demo.sales")
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in src.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        if not tables:
            raise HarnessError(f"{sqlite_path} has no tables")
        for table in tables:
            info = src.execute(f'PRAGMA table_info("{table}")').fetchall()
            cols = ", ".join(f'"{c[1].lower()}" {duck_type(c[2])}' for c in info)
            con.execute(f'CREATE TABLE "{table.lower()}" ({cols})')
            path = os.path.join(workdir, f"{table}.csv")
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
                for row in src.execute(f'SELECT * FROM "{table}"'):
                    w.writerow(["\\N" if v is None else v for v in row])
            con.execute(
                f"COPY \"{table.lower()}\" FROM '{path}' "
                "(FORMAT csv, HEADER false, NULL '\\N', QUOTE '\"', ESCAPE '\"')")
            os.remove(path)
    finally:
        src.close()
    con.execute(ORDER_TOTALS)
    return con


def run_reference(con, sql):
    cur = con.execute(sql)
    names = [d[0] for d in cur.description] if cur.description else []
    return names, [list(r) for r in cur.fetchall()]


# --------------------------------------------------------------------------------------------
# The server and the MCP client


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, workdir, verbose=False):
        self.binary = binary
        self.cache = os.path.join(workdir, "cache")
        self.log_path = os.path.join(workdir, "server.log")
        self.state = os.path.join(workdir, "state.db")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = None
        self.verbose = verbose

    def start(self, timeout=120):
        os.makedirs(self.cache, exist_ok=True)
        env = dict(os.environ, SNOWFLAKE_MCP_CACHE=self.cache)
        self.log = open(self.log_path, "wb")
        cmd = [self.binary, "serve", "--demo", "--listen", f"127.0.0.1:{self.port}", "--state", self.state]
        try:
            self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=subprocess.STDOUT)
        except OSError as e:
            raise HarnessError(f"cannot start {self.binary}: {e}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"the server exited with status {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise HarnessError(f"the server did not answer /healthz within {timeout} s:\n{self.tail()}")

    def tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self.log:
            self.log.close()
            self.log = None


class McpError(Exception):
    pass


def parse_messages(content_type, body):
    """JSON-RPC messages of a response: a JSON body, or the `data:` events of an SSE stream."""
    text = body.decode("utf-8", "replace")
    if "text/event-stream" not in (content_type or ""):
        text = text.strip()
        if not text:
            return []
        msg = json.loads(text)
        return msg if isinstance(msg, list) else [msg]
    messages, data = [], []

    def flush():
        if data:
            payload = "\n".join(data).strip()
            data.clear()
            if payload:
                msg = json.loads(payload)
                messages.extend(msg if isinstance(msg, list) else [msg])

    for line in text.splitlines():
        if line == "":
            flush()
        elif line.startswith("data:"):
            data.append(line[5:][1:] if line[5:].startswith(" ") else line[5:])
    flush()
    return messages


class McpClient:
    def __init__(self, url, timeout=180):
        self.url = url
        self.timeout = timeout
        self.session = None
        self.next_id = 0

    def post(self, payload):
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.session:
            headers["Mcp-Session-Id"] = self.session
            headers["MCP-Protocol-Version"] = PROTOCOL_VERSION
        req = urllib.request.Request(self.url, data=json.dumps(payload).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, r.headers, parse_messages(r.headers.get("Content-Type"), r.read())
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")[:500]
            raise McpError(f"HTTP {e.code}: {body}") from None

    def request(self, method, params):
        self.next_id += 1
        rid = self.next_id
        _, headers, messages = self.post({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        for m in messages:
            if m.get("id") == rid and ("result" in m or "error" in m):
                return headers, m
        raise McpError(f"no response to {method} (got {messages!r:.300})")

    def initialize(self):
        self.session = None
        headers, m = self.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "demo-corpus", "version": "1"},
        })
        if "error" in m:
            raise McpError(f"initialize failed: {m['error']}")
        self.session = headers.get("Mcp-Session-Id")
        if not self.session:
            raise McpError("initialize returned no Mcp-Session-Id header")
        status, _, _ = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if status not in (200, 202):
            raise McpError(f"notifications/initialized answered HTTP {status}")

    def run_query(self, sql):
        """(result dict, None) on success, (None, (kind, message)) on a failed call."""
        for attempt in range(6):
            try:
                _, m = self.request("tools/call", {"name": "run_query",
                                                   "arguments": {"sql": sql, "max_rows": MAX_ROWS}})
            except McpError as e:
                if str(e).startswith("HTTP 404") and attempt == 0:
                    self.initialize()  # the session went away: start a new one, once
                    continue
                return None, ("transport", str(e))
            except (urllib.error.URLError, OSError, ValueError) as e:
                return None, ("transport", f"{type(e).__name__}: {e}")
            if "error" in m:
                return None, ("jsonrpc", json.dumps(m["error"])[:500])
            result = m["result"]
            if result.get("isError"):
                err = (result.get("_meta") or {}).get("error") or {}
                kind = err.get("kind") or "error"
                message = err.get("message") or " ".join(
                    c.get("text", "") for c in result.get("content", []) if isinstance(c, dict))
                if kind in ("rate_limited", "busy") and attempt < 5:
                    time.sleep(min(30.0, (err.get("retry_after_ms") or 1000) / 1000.0))
                    continue
                return None, (kind, message)
            sc = result.get("structuredContent")
            if not isinstance(sc, dict):
                return None, ("protocol", "a successful result without structuredContent")
            return sc, None
        return None, ("rate_limited", "gave up after retries")


# --------------------------------------------------------------------------------------------
# Normalising and comparing values

NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?$")


def canon_ts(date_part, time_part, frac):
    frac = (frac or "").rstrip("0")
    return f"{date_part} {time_part}" + (f".{frac}" if frac else "")


def norm(v):
    """A canonical, comparable form of a cell: None, ('b', bool), ('n', float), ('s', str),
    ('l', tuple), ('d', tuple of sorted (key, value))."""
    if v is None:
        return None
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float, decimal.Decimal)):
        return ("n", float(v))
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            return ("s", v.isoformat(sep=" "))
        return ("s", canon_ts(v.strftime("%Y-%m-%d"), v.strftime("%H:%M:%S"), f"{v.microsecond:06d}"))
    if isinstance(v, dt.date):
        return ("s", v.isoformat())
    if isinstance(v, dt.time):
        return ("s", v.isoformat())
    if isinstance(v, str):
        m = TIMESTAMP.match(v)
        if m:
            return ("s", canon_ts(*m.groups()))
        return ("s", v)
    if isinstance(v, (list, tuple)):
        return ("l", tuple(norm(x) for x in v))
    if isinstance(v, dict):
        return ("d", tuple(sorted((str(k), norm(x)) for k, x in v.items())))
    if isinstance(v, (bytes, bytearray)):
        return ("s", bytes(v).hex().upper())
    return ("s", str(v))


def coerce_like(value, model):
    """Re-read `value` (a server or reference cell) in the shape `model` has on the other side:
    numbers sent as strings (exact decimals too long for a double) become numbers, JSON text
    becomes structure. Nothing else is coerced."""
    if isinstance(value, str):
        if model is not None and model[0] == "n" and NUMERIC.match(value.strip()):
            return ("n", float(value))
        if model is not None and model[0] in ("l", "d"):
            try:
                return norm(json.loads(value))
            except ValueError:
                return ("s", value)
    return norm(value)


def num_eq(a, b, tol):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=tol, abs_tol=1e-12)


def eq(a, b, tol):
    if a is None or b is None:
        return a is None and b is None
    if a[0] != b[0]:
        return False
    if a[0] == "n":
        return num_eq(a[1], b[1], tol)
    if a[0] == "l":
        return len(a[1]) == len(b[1]) and all(eq(x, y, tol) for x, y in zip(a[1], b[1]))
    if a[0] == "d":
        return ([k for k, _ in a[1]] == [k for k, _ in b[1]]
                and all(eq(x, y, tol) for (_, x), (_, y) in zip(a[1], b[1])))
    return a[1] == b[1]


def sort_key(v, digits):
    if v is None:
        return (0, "")
    if v[0] == "b":
        return (1, str(v[1]))
    if v[0] == "n":
        x = v[1]
        if x == 0 or math.isnan(x) or math.isinf(x):
            return (2, 0.0 if x == 0 else (str(x),))
        return (2, float(f"{x:.{digits}g}"))
    if v[0] == "s":
        return (3, v[1])
    return (4, repr(v))


def show(v):
    if v is None:
        return "NULL"
    if v[0] == "n":
        return repr(int(v[1])) if v[1].is_integer() and abs(v[1]) < 1e15 else repr(v[1])
    if v[0] == "s":
        return repr(v[1])
    if v[0] == "b":
        return "TRUE" if v[1] else "FALSE"
    if v[0] == "l":
        return "[" + ", ".join(show(x) for x in v[1]) + "]"
    return "{" + ", ".join(f"{k}: {show(x)}" for k, x in v[1]) + "}"


def show_row(row):
    return "(" + ", ".join(show(v) for v in row) + ")"


def compare_rows(got, want, ordered, tol):
    """None when `got` (server rows) matches `want` (reference rows), else a message."""
    if len(got) != len(want):
        return f"{len(got)} rows, expected {len(want)}" + first_difference(got, want, ordered, tol)
    width_g = {len(r) for r in got}
    width_w = {len(r) for r in want}
    if got and width_g != width_w:
        return f"{sorted(width_g)[0]} columns, expected {sorted(width_w)[0]}"
    if not want:
        return None
    width = len(want[0])
    # Column-wise coercion: numbers as strings and JSON as text are read in the other side's shape.
    models = []
    for c in range(width):
        model = next((norm(r[c]) for r in want if r[c] is not None), None)
        models.append(model)
    g = [[coerce_like(r[c], models[c]) for c in range(width)] for r in got]
    gmodels = [next((x[c] for x in g if x[c] is not None), None) for c in range(width)]
    w = [[coerce_like(r[c], gmodels[c]) for c in range(width)] for r in want]
    return compare_norm(g, w, ordered, tol)


def compare_norm(g, w, ordered, tol):
    if ordered:
        for i, (a, b) in enumerate(zip(g, w)):
            if not all(eq(x, y, tol) for x, y in zip(a, b)):
                return f"row {i + 1}: got {show_row(a)}, expected {show_row(b)}"
        return None
    digits = max(1, min(12, int(-math.log10(tol)) - 1)) if tol > 0 else 12
    gs = sorted(g, key=lambda r: [sort_key(v, digits) for v in r])
    ws = sorted(w, key=lambda r: [sort_key(v, digits) for v in r])
    if all(all(eq(x, y, tol) for x, y in zip(a, b)) for a, b in zip(gs, ws)):
        return None
    # Sorting may have paired rows differently near a tolerance boundary: match greedily.
    if len(g) <= 3000:
        unused = list(range(len(ws)))
        for a in gs:
            hit = next((j for j in unused if all(eq(x, y, tol) for x, y in zip(a, ws[j]))), None)
            if hit is None:
                missing = [ws[j] for j in unused]
                near = missing[0] if missing else None
                return (f"unexpected row {show_row(a)}"
                        + (f" (an expected row not matched: {show_row(near)})" if near else ""))
            unused.remove(hit)
        return None
    for a, b in zip(gs, ws):
        if not all(eq(x, y, tol) for x, y in zip(a, b)):
            return f"got {show_row(a)}, expected {show_row(b)} (rows sorted)"
    return None


def first_difference(got, want, ordered, tol):
    gs = [[norm(v) for v in r] for r in got]
    ws = [[norm(v) for v in r] for r in want]
    if ordered:
        for i in range(min(len(gs), len(ws))):
            if not all(eq(x, y, tol) for x, y in zip(gs[i], ws[i])) or len(gs[i]) != len(ws[i]):
                return f"; row {i + 1}: got {show_row(gs[i])}, expected {show_row(ws[i])}"
    extra = [r for r in gs if not any(len(r) == len(x) and all(eq(a, b, tol) for a, b in zip(r, x)) for x in ws)]
    missing = [r for r in ws if not any(len(r) == len(x) and all(eq(a, b, tol) for a, b in zip(r, x)) for x in gs)]
    parts = []
    if extra:
        parts.append(f"unexpected {show_row(extra[0])}")
    if missing:
        parts.append(f"missing {show_row(missing[0])}")
    return ("; " + ", ".join(parts)) if parts else ""


def subsequence(expected, actual):
    it = iter(actual)
    return all(any(e == a for a in it) for e in expected)


# --------------------------------------------------------------------------------------------
# Checking one entry


def rows_as_lists(sc):
    """structuredContent rows as lists in column order (rows may be arrays or objects)."""
    names = [c.get("name") for c in sc.get("columns", [])]
    out = []
    for r in sc.get("rows", []):
        if isinstance(r, dict):
            out.append([r.get(n) for n in names])
        else:
            out.append(list(r))
    return names, out


def check_entry(entry, sc, ref):
    """None if the server's answer `sc` is right for `entry`, else a message. `ref` is the
    reference (names, rows) or None."""
    check = entry.get("check", "rows")
    tol = float(entry.get("tolerance", DEFAULT_TOLERANCE))
    names, rows = rows_as_lists(sc)
    if sc.get("truncated"):
        return f"the result was truncated at {len(rows)} rows"
    if "expect_rows" in entry and len(rows) != entry["expect_rows"]:
        return f"{len(rows)} rows, expected {entry['expect_rows']}"
    if check == "runs":
        return None
    if check == "columns":
        want = [c.upper() for c in entry.get("columns", [])]
        have = [str(n).upper() for n in names]
        if want and not subsequence(want, have):
            missing = [c for c in want if c not in have]
            return (f"columns {names} lack {missing}" if missing
                    else f"columns {names} are not in the expected order {entry['columns']}")
        for col, values in (entry.get("expect_values") or {}).items():
            idx = next((i for i, n in enumerate(have) if n == col.upper()), None)
            if idx is None:
                return f"no column {col!r} in {names}"
            got = sorted((norm(r[idx]) for r in rows), key=lambda v: sort_key(v, 12))
            exp = sorted((norm(v) for v in values), key=lambda v: sort_key(v, 12))
            if len(got) != len(exp) or not all(eq(a, b, tol) for a, b in zip(got, exp)):
                return f"column {col}: got {[show(v) for v in got]}, expected {[show(v) for v in exp]}"
        if ref is None:
            return None
    if ref is None:
        return "the entry has no reference to compare with"
    return compare_rows(rows, ref[1], bool(entry.get("ordered")), tol)


# --------------------------------------------------------------------------------------------
# Main


def load_corpus(only):
    try:
        with open(CORPUS, encoding="utf-8") as f:
            corpus = json.load(f)
    except (OSError, ValueError) as e:
        raise HarnessError(f"cannot read {CORPUS}: {e}")
    ids = [e["id"] for e in corpus]
    if len(ids) != len(set(ids)):
        raise HarnessError("duplicate ids in queries.json")
    if only:
        wanted = {i.strip() for o in only for i in o.split(",") if i.strip()}
        unknown = wanted - set(ids)
        if unknown:
            raise HarnessError(f"no such id: {', '.join(sorted(unknown))}")
        corpus = [e for e in corpus if e["id"] in wanted]
    return corpus


def compute_references(corpus, sqlite_path, workdir, verbose):
    con = load_reference_db(sqlite_path, workdir)
    refs, errors = {}, {}
    for e in corpus:
        if not e.get("reference"):
            continue
        try:
            refs[e["id"]] = run_reference(con, e["reference"])
        except Exception as ex:  # a broken reference is a corpus bug, reported per entry
            errors[e["id"]] = f"{type(ex).__name__}: {ex}".splitlines()[0][:300]
            if verbose:
                print(f"  reference of {e['id']} failed: {errors[e['id']]}")
    con.close()
    return refs, errors


def pct(n, d):
    return f"{100.0 * n / d:5.1f}%" if d else "  n/a"


def report(corpus, results, out=sys.stdout):
    total = len(corpus)
    answered = sum(1 for r in results.values() if r["answered"])
    correct = sum(1 for r in results.values() if r["correct"])
    feats = {}
    for e in corpus:
        r = results[e["id"]]
        for f in e.get("features", []):
            t = feats.setdefault(f, [0, 0, 0])
            t[0] += 1
            t[1] += r["answered"]
            t[2] += r["correct"]
    if feats:
        print("\nper feature (correct/total, answered):", file=out)
        width = max(len(f) for f in feats)
        for f in sorted(feats):
            t = feats[f]
            print(f"  {f:<{width}}  {t[2]:>3}/{t[0]:<3} {pct(t[2], t[0])}   answered {t[1]:>3}", file=out)
    kinds = {}
    for r in results.values():
        if not r["answered"]:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    if kinds:
        print("\nerrors by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda x: -x[1])),
              file=out)
    print(f"\nanswered {answered}/{total} ({pct(answered, total).strip()}), "
          f"correct {correct}/{total} ({pct(correct, total).strip()})", file=out)
    return answered, correct


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", help="path to the snowflake-mcp binary")
    ap.add_argument("--only", action="append", default=[], metavar="ID",
                    help="run only this entry (repeatable, or comma-separated)")
    ap.add_argument("--verbose", action="store_true", help="print every query's outcome and details")
    ap.add_argument("--json", metavar="PATH", help="also write per-query results as JSON to PATH")
    ap.add_argument("--check-references", action="store_true",
                    help="only run the DuckDB references (over a demo file generated by --server, "
                         "or the newest demo-v*.sqlite of the cache directory)")
    args = ap.parse_args()

    ensure_duckdb()
    corpus = load_corpus(args.only)
    if not args.server and not args.check_references:
        ap.error("--server is required (or --check-references)")
    if args.server and not os.access(args.server, os.X_OK):
        raise HarnessError(f"{args.server} is not an executable file")

    workdir = tempfile.mkdtemp(prefix="demo-corpus-")
    server = None

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        if args.server:
            server = Server(os.path.abspath(args.server), workdir, args.verbose)
            server.start()
            client = McpClient(server.base + "/mcp")
            client.initialize()
            demo = find_demo_file(server.cache)
            if demo is None:  # a server may build the data lazily, at its first query
                client.run_query("SELECT 1")
                deadline = time.monotonic() + 60
                while demo is None and time.monotonic() < deadline:
                    time.sleep(0.5)
                    demo = find_demo_file(server.cache)
            if demo is None:
                raise HarnessError(f"the server wrote no demo-v*.sqlite into {server.cache}")
        else:
            demo = find_demo_file(cache_dir())
            if demo is None:
                raise HarnessError(f"no demo-v*.sqlite in {cache_dir()}; give --server to generate one")
        if args.verbose:
            print(f"reference data: {demo}")
        refs, ref_errors = compute_references(corpus, demo, workdir, args.verbose)

        if args.check_references:
            for e in corpus:
                if e["id"] in ref_errors:
                    print(f"{e['id']}: REFERENCE ERROR {ref_errors[e['id']]}")
                elif args.verbose and e["id"] in refs:
                    names, rows = refs[e["id"]]
                    print(f"{e['id']}: {len(rows)} rows {[show_row([norm(v) for v in r]) for r in rows[:3]]}")
            n = sum(1 for e in corpus if e.get("reference"))
            print(f"references: {n - len(ref_errors)}/{n} ran")
            return 0

        results = {}
        for e in corpus:
            t0 = time.monotonic()
            sc, err = client.run_query(e["snowflake"])
            elapsed = time.monotonic() - t0
            r = {"id": e["id"], "answered": sc is not None, "correct": False, "kind": None,
                 "message": None, "seconds": round(elapsed, 3)}
            if err:
                r["kind"], r["message"] = err
                line = f"{e['id']}: ERROR {err[0]}: {' '.join(err[1].split())[:300]}"
            elif e["id"] in ref_errors:
                r["kind"], r["message"] = "reference_error", ref_errors[e["id"]]
                line = f"{e['id']}: REFERENCE ERROR (corpus bug) {ref_errors[e['id']]}"
            else:
                problem = check_entry(e, sc, refs.get(e["id"]))
                if problem is None:
                    r["correct"] = True
                    line = None
                else:
                    r["kind"], r["message"] = "wrong", problem
                    line = f"{e['id']}: WRONG {problem}"
            results[e["id"]] = r
            if line:
                print(line[:600])
            elif args.verbose:
                print(f"{e['id']}: ok ({elapsed:.2f} s)")
            if args.verbose and line:
                print("    sql: " + " ".join(e["snowflake"].split()))
                if sc is not None:
                    names, rows = rows_as_lists(sc)
                    print(f"    got columns {names}, {len(rows)} rows: "
                          + "; ".join(show_row([norm(v) for v in r]) for r in rows[:3]))
                if e["id"] in refs:
                    rn, rr = refs[e["id"]]
                    print(f"    expected {len(rr)} rows: " + "; ".join(show_row([norm(v) for v in r]) for r in rr[:3]))

        print(f"\nserver: {args.server}")
        answered, correct = report(corpus, results)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({"server": args.server, "total": len(corpus), "answered": answered,
                           "correct": correct, "results": [results[e["id"]] for e in corpus]}, f, indent=2)
        return 0
    finally:
        if server:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as e:
        print(f"demo-corpus: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("demo-corpus: interrupted", file=sys.stderr)
        sys.exit(130)
    except McpError as e:
        print(f"demo-corpus: MCP: {e}", file=sys.stderr)
        sys.exit(2)
