//! Request signatures: an HMAC-SHA256 over a timestamp and the body, so a
//! key never travels with the request and a captured request cannot be
//! replayed after the receiver's window (or twice within it).
//!
//! The header is
//! `Edgepush-Signature: t=<unix seconds>,n=<nonce>,k=<key id>,v1=<hex>`
//! where `v1` is `HMAC-SHA256(key, "<t>.<n>." ++ body)` over the body
//! exactly as sent (compressed, when it is). The nonce (1 to 64 ASCII
//! letters, digits, `-` or `_`) makes each attempt's signature different,
//! so a retry of the same body in the same second is not taken for a
//! replay. The key id is [`key_id`] of the key: it tells the receiver which
//! key to check against without revealing it.
//!
//! ```
//! use edgepush_protocol::sign;
//!
//! let header = sign::header("s3cret", 1_700_000_000, "n1", b"body");
//! let parsed = sign::parse(&header).expect("well formed");
//! assert_eq!(parsed.key_id, sign::key_id("s3cret"));
//! assert!(parsed.verify("s3cret", b"body"));
//! assert!(!parsed.verify("s3cret", b"other body"));
//! ```

use alloc::string::String;

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The header that carries a signature.
pub const HEADER: &str = "edgepush-signature";

/// Hex digits of a key id.
const KEY_ID_LEN: usize = 16;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The public id of `key`: the first 16 hex digits of SHA-256 over a fixed
/// label and the key. Ids can be logged; keys cannot be recovered from them.
pub fn key_id(key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"edgepush key id\0")
        .chain_update(key.as_bytes())
        .finalize();
    let mut id = hex::encode(digest);
    id.truncate(KEY_ID_LEN);
    id
}

fn mac(key: &str, unix_seconds: u64, nonce: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).unwrap_or_else(|_| unreachable!());
    let mut t = itoa::Buffer::new();
    mac.update(t.format(unix_seconds).as_bytes());
    mac.update(b".");
    mac.update(nonce.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Whether `nonce` is one a header may carry.
pub fn valid_nonce(nonce: &str) -> bool {
    (1..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `Edgepush-Signature` value for `body` sent at `unix_seconds`, with a
/// `nonce` unique to this attempt (see [`valid_nonce`]).
pub fn header(key: &str, unix_seconds: u64, nonce: &str, body: &[u8]) -> String {
    debug_assert!(valid_nonce(nonce), "nonce {nonce:?}");
    let tag = mac(key, unix_seconds, nonce, body).finalize().into_bytes();
    let mut t = itoa::Buffer::new();
    let mut out = String::with_capacity(120);
    out.push_str("t=");
    out.push_str(t.format(unix_seconds));
    out.push_str(",n=");
    out.push_str(nonce);
    out.push_str(",k=");
    out.push_str(&key_id(key));
    out.push_str(",v1=");
    out.push_str(&hex::encode(tag));
    out
}

/// A parsed `Edgepush-Signature` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature<'a> {
    /// When the request was signed, in seconds since the Unix epoch.
    pub unix_seconds: u64,
    /// The attempt's nonce.
    pub nonce: &'a str,
    /// The signing key's [`key_id`].
    pub key_id: &'a str,
    /// The HMAC.
    pub mac: [u8; 32],
}

impl Signature<'_> {
    /// Whether this is `key`'s signature of `body`, compared in constant time.
    pub fn verify(&self, key: &str, body: &[u8]) -> bool {
        mac(key, self.unix_seconds, self.nonce, body)
            .verify_slice(&self.mac)
            .is_ok()
    }
}

const EXPECTED: &str = "expected t=<unix seconds>,n=<nonce>,k=<key id>,v1=<hex HMAC-SHA256>";

/// Parses a header value; the error says what is wrong with it.
pub fn parse(value: &str) -> Result<Signature<'_>, &'static str> {
    let (mut t, mut n, mut k, mut v1) = (None, None, None, None);
    for part in value.split(',') {
        let (name, value) = part.trim().split_once('=').ok_or(EXPECTED)?;
        let slot = match name {
            "t" => &mut t,
            "n" => &mut n,
            "k" => &mut k,
            "v1" => &mut v1,
            // Unknown parts are ignored: a later version may add some.
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err("a part appears twice");
        }
    }
    let unix_seconds = t
        .ok_or("t (the signing time) is missing")?
        .parse()
        .map_err(|_| "t must be whole seconds since the Unix epoch")?;
    let nonce = n.ok_or("n (the nonce) is missing")?;
    if !valid_nonce(nonce) {
        return Err("n must be 1 to 64 ASCII letters, digits, `-` or `_`");
    }
    let key_id = k.ok_or("k (the key id) is missing")?;
    let mut mac = [0; 32];
    hex::decode_to_slice(v1.ok_or("v1 (the HMAC) is missing")?, &mut mac)
        .map_err(|_| "v1 must be 64 hex digits")?;
    Ok(Signature {
        unix_seconds,
        nonce,
        key_id,
        mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_key_time_and_body() {
        let value = header("key", 1_700_000_000, "n1", b"payload");
        let sig = parse(&value).expect("parses");
        assert_eq!(sig.unix_seconds, 1_700_000_000);
        assert_eq!(sig.key_id, key_id("key"));
        assert_eq!(sig.key_id.len(), 16);
        assert!(sig.verify("key", b"payload"));
        assert!(!sig.verify("other key", b"payload"));
        assert!(!sig.verify("key", b"payload!"));
        let later = Signature {
            unix_seconds: 1_700_000_001,
            ..sig
        };
        assert!(!later.verify("key", b"payload"), "the time is signed");
        let other = Signature { nonce: "n2", ..sig };
        assert!(!other.verify("key", b"payload"), "the nonce is signed");
    }

    #[test]
    fn known_answer() {
        // Computed independently:
        // `printf %s 1700000000.n1.payload | openssl dgst -sha256 -hmac key`
        // and `printf 'edgepush key id\0key' | sha256sum`.
        assert_eq!(
            header("key", 1_700_000_000, "n1", b"payload"),
            "t=1700000000,n=n1,k=f94de23aa7e9102b,\
             v1=b5f3e1902aa5d8904822913dec5a6fce620712d7e6b13c439920359e4d731499"
        );
    }

    #[test]
    fn malformed_headers_are_named() {
        assert_eq!(parse("garbage"), Err(EXPECTED));
        assert_eq!(
            parse("n=x,k=a,v1=00"),
            Err("t (the signing time) is missing")
        );
        assert_eq!(
            parse("t=x,n=x,k=a,v1=00"),
            Err("t must be whole seconds since the Unix epoch")
        );
        assert_eq!(parse("t=1,k=a,v1=00"), Err("n (the nonce) is missing"));
        assert!(parse("t=1,n=a b,k=a,v1=00").is_err_and(|e| e.starts_with("n must be")));
        assert!(parse("t=1,n=,k=a,v1=00").is_err_and(|e| e.starts_with("n must be")));
        assert_eq!(parse("t=1,n=x,v1=00"), Err("k (the key id) is missing"));
        assert_eq!(parse("t=1,n=x,k=a"), Err("v1 (the HMAC) is missing"));
        assert_eq!(parse("t=1,n=x,k=a,v1=00"), Err("v1 must be 64 hex digits"));
        assert_eq!(parse("t=1,t=2,n=x,k=a,v1=00"), Err("a part appears twice"));
    }
}
