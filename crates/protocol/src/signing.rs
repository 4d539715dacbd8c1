//! Request signing and SDK authentication with signing keys.
//!
//! A signing key looks like `signkey-<env>-<hex>`. Two different secrets derive from it:
//! - the **HMAC key** for `X-Inngest-Signature` is the UTF-8 bytes of the hex *text*
//!   after the `signkey-<env>-` prefix (not hex-decoded);
//! - the **Bearer token** SDKs send to the server is `hex(sha256(hex-decoded key))`,
//!   prefixed with `signkey-<env>-` by the TS SDK and bare from Python.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// A signing key error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The key is empty once its prefix is stripped.
    #[error("signing key is empty; set it to `signkey-<env>-<hex>`")]
    EmptyKey,
    /// The key is not hex, so its Bearer hash cannot be computed.
    #[error("signing key is not hex after its `signkey-<env>-` prefix")]
    NotHex,
    /// The signature header is missing or malformed.
    #[error("signature header is malformed; expected `t=<unix secs>&s=<hex>`")]
    Malformed,
    /// The signature's timestamp is too far from now.
    #[error("signature has expired (timestamp too far from now)")]
    Expired,
    /// No key produced the signature.
    #[error("signature does not match any signing key")]
    Mismatch,
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A signing key, as configured (`INNGEST_SIGNING_KEY`).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The `signkey-<env>-` prefix, empty when the key had none.
    prefix: String,
    /// The hex text after the prefix.
    secret: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("SigningKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a key, with or without its `signkey-<env>-` prefix (`<env>` is `\w+`).
    pub fn new(key: &str) -> Result<Self> {
        let key = key.trim();
        let (prefix, secret) = split_prefix(key);
        if secret.is_empty() {
            return Err(Error::EmptyKey);
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The hex text after the prefix: the HMAC key's bytes.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The `signkey-<env>-` prefix (empty when the key had none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `hex(sha256(hex-decoded secret))`: what SDKs send as their Bearer token.
    pub fn hashed(&self) -> Result<String> {
        hashed_key(&self.secret)
    }

    /// The Bearer token as the TS SDK sends it: `signkey-<env>-<hash>`.
    pub fn bearer(&self) -> Result<String> {
        Ok(format!("{}{}", self.prefix, self.hashed()?))
    }
}

/// Splits `signkey-<env>-` (env = `\w+`) off the front of a key.
fn split_prefix(key: &str) -> (&str, &str) {
    if let Some(rest) = key.strip_prefix("signkey-") {
        if let Some(dash) = rest.find('-') {
            let env = &rest[..dash];
            if !env.is_empty() && env.chars().all(|c| c.is_alphanumeric() || c == '_') {
                let cut = "signkey-".len() + dash + 1;
                return (&key[..cut], &key[cut..]);
            }
        }
    }
    ("", key)
}

/// `hex(sha256(hex-decoded key))`, the key's Bearer hash. Accepts the key with or
/// without its `signkey-<env>-` prefix.
pub fn hashed_key(key: &str) -> Result<String> {
    let (_, secret) = split_prefix(key.trim());
    if secret.is_empty() {
        return Err(Error::EmptyKey);
    }
    let bytes = hex::decode(secret).map_err(|_| Error::NotHex)?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

fn mac(body: &[u8], key: &SigningKey, unix_secs: i64) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key.secret.as_bytes()).expect("hmac takes any key");
    mac.update(body);
    mac.update(unix_secs.to_string().as_bytes());
    mac
}

/// The `X-Inngest-Signature` value for `body` at `unix_secs`: `t=<unix>&s=<hex>`.
pub fn sign(body: &[u8], key: &SigningKey, unix_secs: i64) -> String {
    let sig = hex::encode(mac(body, key, unix_secs).finalize().into_bytes());
    format!("t={unix_secs}&s={sig}")
}

/// Checks an `X-Inngest-Signature` header against `body`, trying each key in order
/// (primary, then fallback). `max_skew_secs` bounds `|now - t|`; `None` skips that check.
/// Returns the index of the key that matched.
pub fn verify(
    header: &str,
    body: &[u8],
    keys: &[SigningKey],
    now_secs: i64,
    max_skew_secs: Option<i64>,
) -> Result<usize> {
    let (t, s) = parse_header(header)?;
    if let Some(max) = max_skew_secs {
        if now_secs.abs_diff(t) > max.unsigned_abs() {
            return Err(Error::Expired);
        }
    }
    let sig = hex::decode(s).map_err(|_| Error::Malformed)?;
    keys.iter()
        .position(|key| mac(body, key, t).verify_slice(&sig).is_ok())
        .ok_or(Error::Mismatch)
}

fn parse_header(header: &str) -> Result<(i64, &str)> {
    let mut t = None;
    let mut s = None;
    for part in header.trim().split('&') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("s", v)) => s = Some(v),
            _ => {}
        }
    }
    match (t, s) {
        (Some(t), Some(s)) if !s.is_empty() => Ok((t, s)),
        _ => Err(Error::Malformed),
    }
}

/// Whether an `Authorization` header value carries the Bearer hash of one of `keys`.
/// Accepts `Bearer signkey-<env>-<hash>` (TS) and `Bearer <hash>` (Python); only the
/// hash part is compared, in constant time.
pub fn bearer_matches(authorization: &str, keys: &[SigningKey]) -> bool {
    let Some(token) = authorization
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| authorization.trim().strip_prefix("bearer "))
    else {
        return false;
    };
    let (_, presented) = split_prefix(token.trim());
    if presented.is_empty() {
        return false;
    }
    keys.iter()
        .filter_map(|k| k.hashed().ok())
        .any(|h| constant_time_eq(h.as_bytes(), presented.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // A made-up test key; its Bearer hash and the signatures below were observed on
    // the wire from the real SDKs (TS 4.24.0 and Python 0.5.19).
    const KEY: &str =
        "signkey-test-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const HASH: &str = "4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c837";
    const TS_BODY: &str = r#"[{"id":"86f7e437faa5a7fce15d1ddcb9eaeaea377667b8","op":"StepRun","name":"a","opts":{},"displayName":"a","userland":{"id":"a"},"data":{"a":1,"id":"x1"},"timing":{"a":1796396715787000000,"b":0}}]"#;
    const TS_SIG: &str =
        "t=1796396716&s=c3d72f1014790d3888ac9bf3acf23b39684e5441e414506d3f19fda0d6575988";
    const PY_BODY: &str = r#"[{"displayName": "a", "id": "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8", "name": "a", "op": "StepRun", "opts": null, "userland": {"id": "a", "index": null}, "data": {"a": 1, "id": "x1"}}]"#;
    const PY_SIG: &str =
        "t=1796396717&s=255949ff95b840f56661c320d941a2c3840543062da176864cb7fbf9a9e9f00b";

    #[test]
    fn signatures_match_the_sdks() {
        let key = SigningKey::new(KEY).unwrap();
        assert_eq!(key.prefix(), "signkey-test-");
        assert_eq!(sign(TS_BODY.as_bytes(), &key, 1796396716), TS_SIG);
        assert_eq!(sign(PY_BODY.as_bytes(), &key, 1796396717), PY_SIG);
        assert!(
            !format!("{key:?}").contains("0123"),
            "debug hides the secret"
        );

        let other = SigningKey::new("signkey-prod-abcd").unwrap();
        let both = [other.clone(), key.clone()];
        let now = 1796396716;
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a [SigningKey],
            Option<i64>,
            Result<usize>,
        );
        let cases: Vec<Case<'_>> = vec![
            (TS_SIG, TS_BODY, &both, Some(300), Ok(1)),
            (PY_SIG, PY_BODY, &both[1..], None, Ok(0)),
            (TS_SIG, PY_BODY, &both, Some(300), Err(Error::Mismatch)),
            (TS_SIG, TS_BODY, &both[..1], Some(300), Err(Error::Mismatch)),
            (
                "t=1796396000&s=00",
                TS_BODY,
                &both,
                Some(300),
                Err(Error::Expired),
            ),
            ("s=abcd", TS_BODY, &both, None, Err(Error::Malformed)),
            ("t=1&s=zz", TS_BODY, &both, None, Err(Error::Malformed)),
            ("", TS_BODY, &both, None, Err(Error::Malformed)),
        ];
        for (header, body, keys, skew, want) in cases {
            assert_eq!(
                verify(header, body.as_bytes(), keys, now, skew),
                want,
                "{header}"
            );
        }
    }

    #[test]
    fn bearer_hash_compares_only_the_hash() {
        let key = SigningKey::new(KEY).unwrap();
        assert_eq!(hashed_key(KEY).unwrap(), HASH);
        assert_eq!(key.bearer().unwrap(), format!("signkey-test-{HASH}"));
        assert_eq!(SigningKey::new("signkey-test-"), Err(Error::EmptyKey));
        assert_eq!(hashed_key("signkey-test-xyz"), Err(Error::NotHex));
        let keys = [SigningKey::new("signkey-prod-00").unwrap(), key];
        let cases = [
            (format!("Bearer signkey-test-{HASH}"), true),
            (format!("Bearer signkey-prod-{HASH}"), true),
            (format!("Bearer {HASH}"), true),
            (format!("bearer {HASH}"), true),
            (format!("Bearer {}", &HASH[1..]), false),
            (format!("Basic {HASH}"), false),
            ("Bearer undefined".to_owned(), false),
            ("Bearer".to_owned(), false),
            (String::new(), false),
        ];
        for (header, want) in cases {
            assert_eq!(bearer_matches(&header, &keys), want, "{header}");
        }
    }
}
