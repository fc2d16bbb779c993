//! Fixture access shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/providers")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn fixture_str(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("fixtures are UTF-8")
}

/// One row of signatures.tsv.
#[derive(Debug, Clone)]
pub struct SignatureRow {
    pub url: String,
    pub secret: String,
    pub file: String,
    pub signature: String,
    pub scheme: String,
}

pub fn signature_rows() -> Vec<SignatureRow> {
    let text = fixture_str("signatures.tsv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("url\tauth_token\tfixture_file\texpected_signature\tscheme")
    );
    lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 5, "{line}");
            SignatureRow {
                url: cols[0].into(),
                secret: cols[1].into(),
                file: cols[2].into(),
                signature: cols[3].into(),
                scheme: cols[4].into(),
            }
        })
        .collect()
}

/// A local port with nothing listening on it: bound, then released.
pub fn refused_base_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

pub const MESSAGE_ID: &str = "0192f0c1-7a3b-7c4d-8e5f-0123456789ab";
