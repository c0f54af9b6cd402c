//! What the client's tests against local Snowflakes share.
#![allow(dead_code)]

use snowflake_client::{Client, ConnectionSettings, Secret, Session};

/// A password login to a Snowflake on loopback `port`, over plain HTTP.
pub fn settings(port: u16) -> ConnectionSettings {
    ConnectionSettings {
        account: Some("acct".into()),
        user: Some("u".into()),
        password: Some(Secret::new("pw")),
        host: Some("127.0.0.1".into()),
        port: Some(port),
        protocol: Some("http".into()),
        ..Default::default()
    }
}

/// A session logged in to the Snowflake on `port`.
pub async fn session_on(port: u16) -> Session {
    Client::new(&settings(port)).unwrap().login().await.unwrap()
}
