//! Authentication: turning settings into the credential fields of a login request.
//!
//! Four methods, chosen by `authenticator`:
//!
//! | authenticator | needs | sent in the login body |
//! |---|---|---|
//! | `snowflake` (default) | `user`, `password` | `LOGIN_NAME`, `PASSWORD` |
//! | `snowflake_jwt` | `user`, `private_key_file` (PKCS#8 PEM, optionally encrypted) | `AUTHENTICATOR=SNOWFLAKE_JWT`, `TOKEN=<jwt>` |
//! | `oauth` | `token` | `AUTHENTICATOR=OAUTH`, `TOKEN` |
//! | `programmatic_access_token` | `user`, `token` | `AUTHENTICATOR=PROGRAMMATIC_ACCESS_TOKEN`, `TOKEN` |
//!
//! Key pair: the JWT is signed RS256 with the user's private key. Its claims are
//! `iss = ACCOUNT.USER.SHA256:<base64 SHA-256 of the public key's DER>`, `sub = ACCOUNT.USER`,
//! `iat` now and a short `exp`, where ACCOUNT is the account identifier up to its first `.`,
//! upper-cased. The key is read and decrypted once, when the client is built, so a bad key or
//! passphrase is reported before any network traffic.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::settings::{ConnectionSettings, Secret};

/// How long a key-pair JWT is valid. Snowflake accepts at most an hour; it is used once, at once.
const JWT_LIFETIME_SECS: u64 = 120;

/// Resolved credentials, ready to fill a login request.
#[derive(Clone)]
pub(crate) enum Credentials {
    Password { user: String, password: Secret },
    KeyPair(Box<KeyPair>),
    OAuth { user: Option<String>, token: Secret },
    ProgrammaticToken { user: String, token: Secret },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credentials::Password { .. } => "Credentials::Password(***)",
            Credentials::KeyPair(_) => "Credentials::KeyPair(***)",
            Credentials::OAuth { .. } => "Credentials::OAuth(***)",
            Credentials::ProgrammaticToken { .. } => "Credentials::ProgrammaticToken(***)",
        })
    }
}

/// A decrypted RSA key with the account and user it signs for.
#[derive(Clone)]
pub(crate) struct KeyPair {
    account: String,
    user: String,
    key: RsaPrivateKey,
    fingerprint: String,
}

impl Credentials {
    /// Pick and check the credentials the settings ask for. Never touches the network.
    pub(crate) fn from_settings(s: &ConnectionSettings) -> Result<Self> {
        let authenticator = s
            .authenticator
            .as_deref()
            .unwrap_or("snowflake")
            .to_ascii_lowercase();
        let user = || {
            s.user.clone().filter(|u| !u.is_empty()).ok_or_else(|| {
                Error::config(format!(
                    "authenticator '{authenticator}' needs `user` (SNOWFLAKE_USER)"
                ))
            })
        };
        let token = || {
            s.token.clone().ok_or_else(|| {
                Error::config(format!(
                    "authenticator '{authenticator}' needs `token` (SNOWFLAKE_TOKEN)"
                ))
            })
        };
        match authenticator.as_str() {
            "snowflake" => Ok(Credentials::Password {
                user: user()?,
                password: s.password.clone().ok_or_else(|| {
                    Error::config("password authentication needs `password` (SNOWFLAKE_PASSWORD)")
                })?,
            }),
            "snowflake_jwt" => {
                let path = s.private_key_file.as_ref().ok_or_else(|| {
                    Error::config(
                        "key-pair authentication needs `private_key_file` (SNOWFLAKE_PRIVATE_KEY_FILE)",
                    )
                })?;
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    Error::config(format!(
                        "cannot read private key file {}: {e}",
                        path.display()
                    ))
                })?;
                let account = s
                    .account
                    .clone()
                    .ok_or_else(|| Error::config("key-pair authentication needs `account`"))?;
                Ok(Credentials::KeyPair(Box::new(KeyPair::from_pem(
                    &pem,
                    s.private_key_file_pwd.as_ref(),
                    &account,
                    &user()?,
                )?)))
            }
            "oauth" => Ok(Credentials::OAuth {
                user: s.user.clone().filter(|u| !u.is_empty()),
                token: token()?,
            }),
            "programmatic_access_token" => Ok(Credentials::ProgrammaticToken {
                user: user()?,
                token: token()?,
            }),
            other => Err(Error::config(format!(
                "unknown authenticator '{other}': use snowflake, snowflake_jwt, oauth or programmatic_access_token"
            ))),
        }
    }

    /// Add this method's fields to the `data` object of a login request.
    pub(crate) fn fill_login(&self, data: &mut Map<String, Value>) -> Result<()> {
        match self {
            Credentials::Password { user, password } => {
                data.insert("LOGIN_NAME".into(), json!(user));
                data.insert("PASSWORD".into(), json!(password.expose()));
            }
            Credentials::KeyPair(pair) => {
                data.insert("LOGIN_NAME".into(), json!(pair.user));
                data.insert("AUTHENTICATOR".into(), json!("SNOWFLAKE_JWT"));
                data.insert("TOKEN".into(), json!(pair.jwt(unix_now())?));
            }
            Credentials::OAuth { user, token } => {
                if let Some(user) = user {
                    data.insert("LOGIN_NAME".into(), json!(user));
                }
                data.insert("AUTHENTICATOR".into(), json!("OAUTH"));
                data.insert("TOKEN".into(), json!(token.expose()));
            }
            Credentials::ProgrammaticToken { user, token } => {
                data.insert("LOGIN_NAME".into(), json!(user));
                data.insert("AUTHENTICATOR".into(), json!("PROGRAMMATIC_ACCESS_TOKEN"));
                data.insert("TOKEN".into(), json!(token.expose()));
            }
        }
        Ok(())
    }
}

impl KeyPair {
    /// Read a PKCS#8 PEM key (`BEGIN PRIVATE KEY` or `BEGIN ENCRYPTED PRIVATE KEY`).
    pub(crate) fn from_pem(
        pem: &str,
        passphrase: Option<&Secret>,
        account: &str,
        user: &str,
    ) -> Result<Self> {
        let key = if pem.contains("BEGIN ENCRYPTED PRIVATE KEY") {
            let pass = passphrase.ok_or_else(|| {
                Error::config(
                    "the private key is encrypted: set `private_key_file_pwd` (SNOWFLAKE_PRIVATE_KEY_FILE_PWD)",
                )
            })?;
            RsaPrivateKey::from_pkcs8_encrypted_pem(pem, pass.expose().as_bytes()).map_err(|_| {
                Error::config("cannot decrypt the private key: wrong passphrase or unsupported encryption (use PKCS#8 with PBES2/AES)")
            })?
        } else if pem.contains("BEGIN PRIVATE KEY") {
            RsaPrivateKey::from_pkcs8_pem(pem)
                .map_err(|_| Error::config("the private key file is not a valid PKCS#8 RSA key"))?
        } else if pem.contains("BEGIN RSA PRIVATE KEY") {
            return Err(Error::config(
                "the private key is in PKCS#1 form; convert it to PKCS#8: openssl pkcs8 -topk8 -in key.pem -out key.p8",
            ));
        } else {
            return Err(Error::config(
                "the private key file holds no PEM private key (expected 'BEGIN PRIVATE KEY')",
            ));
        };
        let der = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| Error::config("cannot derive the public key from the private key"))?;
        let fingerprint = format!("SHA256:{}", STANDARD.encode(Sha256::digest(der.as_bytes())));
        Ok(KeyPair {
            account: jwt_account(account),
            user: user.to_ascii_uppercase(),
            key,
            fingerprint,
        })
    }

    /// `SHA256:<base64>` of the public key, as `DESC USER` shows in `RSA_PUBLIC_KEY_FP`.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A signed JWT issued at `now` (seconds since the epoch).
    pub(crate) fn jwt(&self, now: u64) -> Result<String> {
        let subject = format!("{}.{}", self.account, self.user);
        let header = json!({"alg": "RS256", "typ": "JWT"});
        let claims = json!({
            "iss": format!("{subject}.{}", self.fingerprint),
            "sub": subject,
            "iat": now,
            "exp": now + JWT_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signer = SigningKey::<Sha256>::new(self.key.clone());
        let signature = signer
            .try_sign(signing_input.as_bytes())
            .map_err(|_| Error::config("cannot sign the login JWT with the private key"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ))
    }
}

/// The account part of JWT claims: up to the first `.` (region and cloud dropped), upper-cased.
fn jwt_account(account: &str) -> String {
    account
        .split('.')
        .next()
        .unwrap_or(account)
        .to_ascii_uppercase()
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::signature::Verifier;

    fn test_key() -> RsaPrivateKey {
        RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap()
    }

    #[test]
    fn jwt_has_snowflake_claims_and_verifies() {
        let key = test_key();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let pair = KeyPair::from_pem(&pem, None, "xy12345.us-east-1", "alice").unwrap();

        let der = key.to_public_key().to_public_key_der().unwrap();
        let expected_fp = format!("SHA256:{}", STANDARD.encode(Sha256::digest(der.as_bytes())));
        assert_eq!(pair.fingerprint(), expected_fp);

        let jwt = pair.jwt(1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "XY12345.ALICE");
        assert_eq!(claims["iss"], format!("XY12345.ALICE.{expected_fp}"));
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["exp"], 1_700_000_000u64 + JWT_LIFETIME_SECS);

        let verifier = VerifyingKey::<Sha256>::new(key.to_public_key());
        let sig =
            Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
        verifier
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("signature verifies with the public key");
    }

    #[test]
    fn encrypted_key_needs_the_right_passphrase() {
        let key = test_key();
        let pem = key
            .to_pkcs8_encrypted_pem(&mut rand::thread_rng(), b"s3cret", LineEnding::LF)
            .unwrap();
        let ok = KeyPair::from_pem(&pem, Some(&Secret::new("s3cret")), "acct", "bob").unwrap();
        assert!(ok.fingerprint().starts_with("SHA256:"));

        let wrong = KeyPair::from_pem(&pem, Some(&Secret::new("nope")), "acct", "bob")
            .err()
            .unwrap();
        assert!(wrong.message().contains("wrong passphrase"), "{wrong}");
        assert!(!wrong.message().contains("nope"));
        let missing = KeyPair::from_pem(&pem, None, "acct", "bob").err().unwrap();
        assert!(missing.message().contains("private_key_file_pwd"));
    }

    #[test]
    fn garbage_and_pkcs1_keys_get_plain_diagnoses() {
        let e = KeyPair::from_pem("hello", None, "a", "u").err().unwrap();
        assert!(e.message().contains("no PEM private key"));
        let e = KeyPair::from_pem("-----BEGIN RSA PRIVATE KEY-----\n", None, "a", "u")
            .err()
            .unwrap();
        assert!(e.message().contains("PKCS#8"));
    }

    #[test]
    fn settings_choose_the_method_and_report_what_is_missing() {
        let s = ConnectionSettings {
            user: Some("u".into()),
            password: Some(Secret::new("p")),
            ..Default::default()
        };
        assert!(matches!(
            Credentials::from_settings(&s).unwrap(),
            Credentials::Password { .. }
        ));
        let s = ConnectionSettings {
            authenticator: Some("OAUTH".into()),
            ..Default::default()
        };
        let e = Credentials::from_settings(&s).unwrap_err();
        assert!(e.message().contains("needs `token`"), "{e}");
        let s = ConnectionSettings {
            authenticator: Some("externalbrowser".into()),
            ..Default::default()
        };
        assert!(Credentials::from_settings(&s)
            .unwrap_err()
            .message()
            .contains("unknown authenticator"));
    }

    #[test]
    fn login_fields_per_method() {
        let creds = Credentials::ProgrammaticToken {
            user: "u".into(),
            token: Secret::new("pat"),
        };
        let mut data = Map::new();
        creds.fill_login(&mut data).unwrap();
        assert_eq!(data["AUTHENTICATOR"], "PROGRAMMATIC_ACCESS_TOKEN");
        assert_eq!(data["TOKEN"], "pat");
        assert_eq!(data["LOGIN_NAME"], "u");
        assert!(!format!("{creds:?}").contains("pat\""));
    }
}
