//! The events API (`POST /e/{key}`): seeded event ids and `Retry-After`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use chrono::{DateTime, Utc};
use std::time::Duration;
use ulid::Ulid;

/// The header carrying the seed SDKs use for deterministic event ids.
pub const EVENT_ID_SEED_HEADER: &str = "x-inngest-event-id-seed";

/// Why an event id seed was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The seed is not `<unix ms>,<base64 of 10 bytes>`.
    #[error("invalid event id seed {0:?}; expected `<unix ms>,<base64 of 10 random bytes>`")]
    InvalidSeed(String),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The ULIDs for `count` events sent with an `x-inngest-event-id-seed` header.
///
/// Each id has the seed's milliseconds and 10-byte entropy, with the event's index
/// (1 for the first event) added, wrapping, to the big-endian `u32` in the last four
/// entropy bytes. A retried request with the same seed gets the same ids.
pub fn seeded_ulids(seed: &str, count: usize) -> Result<Vec<Ulid>> {
    let invalid = || Error::InvalidSeed(seed.to_owned());
    let (ms, entropy) = seed.trim().split_once(',').ok_or_else(invalid)?;
    let ms: u64 = ms.trim().parse().map_err(|_| invalid())?;
    if ms >= 1 << 48 {
        return Err(invalid());
    }
    let entropy = entropy.trim();
    let bytes = STANDARD
        .decode(entropy)
        .or_else(|_| STANDARD_NO_PAD.decode(entropy))
        .map_err(|_| invalid())?;
    let bytes: [u8; 10] = bytes.try_into().map_err(|_| invalid())?;
    let head = u128::from_be_bytes({
        let mut b = [0u8; 16];
        b[10..16].copy_from_slice(&bytes[..6]);
        b
    });
    let tail = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    Ok((1..=count)
        .map(|i| {
            // The index is added to a u32, wrapping, as Go's uint32 arithmetic does.
            let last = tail.wrapping_add(i as u32);
            Ulid::from_parts(ms, (head << 32) | u128::from(last))
        })
        .collect())
}

/// The shortest and longest waits a `Retry-After` can ask for.
pub const RETRY_AFTER_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));

/// How long a `Retry-After` header asks to wait, clamped to [1 s, 24 h].
///
/// Values of at most 7 characters are integer seconds; longer ones are dates (RFC 3339,
/// as Python sends, or an HTTP date). `None` when the value cannot be read.
pub fn retry_after(header: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = header.trim();
    if value.is_empty() {
        return None;
    }
    let secs: i64 = if value.len() <= 7 {
        value.parse().ok()?
    } else {
        let at = DateTime::parse_from_rfc3339(value)
            .or_else(|_| DateTime::parse_from_rfc2822(value))
            .ok()?;
        // Round up so a date a fraction of a second away still waits for it.
        let ms = at
            .with_timezone(&Utc)
            .signed_duration_since(now)
            .num_milliseconds();
        ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) > 0)
    };
    let (min, max) = RETRY_AFTER_BOUNDS;
    let secs = secs.clamp(min.as_secs() as i64, max.as_secs() as i64);
    Some(Duration::from_secs(secs as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_add_the_index_to_the_entropy() {
        // 10 bytes: 00 01 02 03 04 05 | ff ff ff fe
        let entropy = STANDARD.encode([0, 1, 2, 3, 4, 5, 0xff, 0xff, 0xff, 0xfe]);
        let seed = format!("1764000000000,{entropy}");
        let ids = seeded_ulids(&seed, 3).unwrap();
        assert_eq!(ids.len(), 3);
        let tails: Vec<u32> = ids.iter().map(|u| u.random() as u32).collect();
        assert_eq!(tails, vec![0xffff_ffff, 0, 1], "wraps like a u32");
        for id in &ids {
            assert_eq!(id.timestamp_ms(), 1_764_000_000_000);
            assert_eq!(
                (id.random() >> 32) as u64,
                0x0001_0203_0405,
                "head untouched"
            );
        }
        assert_eq!(seeded_ulids(&seed, 3).unwrap(), ids, "same seed, same ids");
        assert!(seeded_ulids(&seed, 0).unwrap().is_empty());

        for bad in ["", "123", "x,AAAAAAAAAAAAAA==", "1,AAAA", "1,not base64!"] {
            assert!(seeded_ulids(bad, 1).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now: DateTime<Utc> = "2026-12-04T15:00:00Z".parse().unwrap();
        let cases: &[(&str, Option<u64>)] = &[
            ("30", Some(30)),
            ("0", Some(1)),
            ("-5", Some(1)),
            ("9999999", Some(86_400)),
            ("2026-12-04T15:00:45.894Z", Some(46)),
            ("2026-12-04T14:00:00Z", Some(1)),
            ("2026-12-09T15:00:00+00:00", Some(86_400)),
            ("Fri, 04 Dec 2026 15:02:00 GMT", Some(120)),
            ("soon", None),
            ("tomorrow morning", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(
                retry_after(header, now).map(|d| d.as_secs()),
                *want,
                "{header}"
            );
        }
    }
}
