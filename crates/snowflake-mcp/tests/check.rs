//! `snowflake-mcp check` as a user runs it: the real binary, settings from the environment.

use std::process::Command;

fn check(port: u16) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_snowflake-mcp"))
        .arg("check")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("SNOWFLAKE_ACCOUNT", "x")
        .env("SNOWFLAKE_USER", "u")
        .env("SNOWFLAKE_PASSWORD", "secret-pw")
        .env("SNOWFLAKE_HOST", "127.0.0.1")
        .env("SNOWFLAKE_PORT", port.to_string())
        .env("SNOWFLAKE_PROTOCOL", "http")
        .output()
        .expect("run snowflake-mcp check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("secret-pw"), "the password leaked: {text}");
    (out.status.success(), text)
}

#[test]
fn check_succeeds_against_the_emulator_and_prints_the_context() {
    let (ok, text) = check(testkit::fakesnow().port);
    assert!(ok, "{text}");
    for label in [
        "endpoint:",
        "login:      ok",
        "user:",
        "role:",
        "database:",
        "version:",
        "OK",
    ] {
        assert!(text.contains(label), "missing {label:?} in:\n{text}");
    }
    assert!(text.contains("no warehouse is in use"), "{text}");
}

#[test]
fn check_fails_plainly_against_a_closed_port() {
    let (ok, text) = check(testkit::free_port());
    assert!(!ok, "{text}");
    assert!(text.contains("connection was refused"), "{text}");
    assert!(text.contains("hint: nothing listens there"), "{text}");
}

#[test]
fn check_explains_missing_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_snowflake-mcp"))
        .arg("check")
        .env_clear()
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("no Snowflake account"), "{text}");
}
