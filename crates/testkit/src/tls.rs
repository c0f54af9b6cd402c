//! Test certificates made in Rust (no `openssl` on the machine needed): a CA, and a server
//! certificate for `localhost` and `127.0.0.1` signed by it (RSA 2048, SHA-256).

use std::path::{Path, PathBuf};

use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;

/// The files [`test_certificates`] writes.
pub struct TestCertificates {
    /// The server's certificate (PEM).
    pub cert: PathBuf,
    /// The server's private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// The CA that signed it (PEM), for clients to trust.
    pub ca: PathBuf,
}

/// Write `cert.pem`, `key.pem` and `ca.pem` into `dir`: a test CA and a server certificate for
/// `localhost` and `127.0.0.1`, valid from 2020 to 2049.
pub fn test_certificates(dir: &Path) -> TestCertificates {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand::thread_rng();
    let ca_key = RsaPrivateKey::new(&mut rng, 2048).expect("an RSA key");
    let leaf_key = RsaPrivateKey::new(&mut rng, 2048).expect("an RSA key");
    let ca = certificate(
        1,
        "snowflake-mcp test CA",
        &ca_key,
        "snowflake-mcp test CA",
        &ca_key,
        &[
            // basicConstraints (critical): CA
            extension(&[2, 5, 29, 19], true, &seq(&[tlv(0x01, &[0xff])])),
            // keyUsage (critical): keyCertSign, cRLSign
            extension(&[2, 5, 29, 15], true, &tlv(0x03, &[0x01, 0x06])),
        ],
    );
    let leaf = certificate(
        2,
        "localhost",
        &leaf_key,
        "snowflake-mcp test CA",
        &ca_key,
        &[
            // basicConstraints: not a CA
            extension(&[2, 5, 29, 19], false, &seq(&[])),
            // subjectAltName: DNS localhost, IP 127.0.0.1
            extension(
                &[2, 5, 29, 17],
                false,
                &seq(&[tlv(0x82, b"localhost"), tlv(0x87, &[127, 0, 0, 1])]),
            ),
            // extendedKeyUsage: serverAuth
            extension(
                &[2, 5, 29, 37],
                false,
                &seq(&[oid(&[1, 3, 6, 1, 5, 5, 7, 3, 1])]),
            ),
        ],
    );
    let files = TestCertificates {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        ca: dir.join("ca.pem"),
    };
    std::fs::write(&files.cert, pem("CERTIFICATE", &leaf)).unwrap();
    std::fs::write(&files.ca, pem("CERTIFICATE", &ca)).unwrap();
    let key = leaf_key.to_pkcs8_pem(LineEnding::LF).unwrap();
    std::fs::write(&files.key, key.as_bytes()).unwrap();
    files
}

/// A DER certificate for `subject`'s key, signed by `issuer_key`.
fn certificate(
    serial: u8,
    subject: &str,
    subject_key: &RsaPrivateKey,
    issuer: &str,
    issuer_key: &RsaPrivateKey,
    extensions: &[Vec<u8>],
) -> Vec<u8> {
    // sha256WithRSAEncryption, NULL parameters
    let algorithm = seq(&[oid(&[1, 2, 840, 113549, 1, 1, 11]), tlv(0x05, &[])]);
    let spki = subject_key
        .to_public_key()
        .to_public_key_der()
        .unwrap()
        .as_bytes()
        .to_vec();
    let tbs = seq(&[
        tlv(0xa0, &tlv(0x02, &[2])), // version 3
        tlv(0x02, &[serial]),
        algorithm.clone(),
        name(issuer),
        seq(&[tlv(0x17, b"200101000000Z"), tlv(0x17, b"491231235959Z")]),
        name(subject),
        spki,
        tlv(0xa3, &seq(extensions)),
    ]);
    let signature = SigningKey::<sha2::Sha256>::new(issuer_key.clone())
        .sign(&tbs)
        .to_vec();
    let mut bits = vec![0u8]; // no unused bits
    bits.extend(signature);
    seq(&[tbs, algorithm, tlv(0x03, &bits)])
}

/// `CN=<cn>`.
fn name(cn: &str) -> Vec<u8> {
    seq(&[tlv(
        0x31,
        &seq(&[oid(&[2, 5, 4, 3]), tlv(0x0c, cn.as_bytes())]),
    )])
}

fn extension(id: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut parts = vec![oid(id)];
    if critical {
        parts.push(tlv(0x01, &[0xff]));
    }
    parts.push(tlv(0x04, value));
    seq(&parts)
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            chunk.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    tlv(0x06, &body)
}

/// One DER tag-length-value.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = value.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
