//! Inngest time strings: `"500ms"`, `"1.5s"`, `"1m"`, `"2h30m10s"`, `"1d"`, `"1w"`.
//!
//! A string is one or more `<number><unit>` terms, summed. Units: `ns`, `us` (or `µs`),
//! `ms`, `s`, `m`, `h`, `d` (24 h) and `w` (7 d). Numbers may have a fraction.

use std::time::Duration;

/// Why a time string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The string is empty.
    #[error("duration is empty; use e.g. \"30s\", \"5m\" or \"1h\"")]
    Empty,
    /// A term has no number, or its number is malformed.
    #[error("invalid duration {0:?}: expected terms like \"2h30m10s\"")]
    Invalid(String),
    /// A term has a unit we don't know.
    #[error("unknown unit {unit:?} in duration {input:?}; use ns, us, ms, s, m, h, d or w")]
    UnknownUnit {
        /// The whole string.
        input: String,
        /// The unit that was not recognised.
        unit: String,
    },
    /// The total does not fit a `Duration`.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses an Inngest time string into a [`Duration`].
pub fn parse_duration(input: &str) -> Result<Duration> {
    let s = input.trim();
    if s.is_empty() {
        return Err(Error::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = || Error::Invalid(input.to_owned());
    let mut total_nanos: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let nanos_per: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3_600e9,
            "d" => 86_400e9,
            "w" => 604_800e9,
            _ => {
                return Err(Error::UnknownUnit {
                    input: input.to_owned(),
                    unit: unit.to_owned(),
                });
            }
        };
        total_nanos += value * nanos_per;
        rest = next;
    }
    if !total_nanos.is_finite() || total_nanos >= u64::MAX as f64 {
        return Err(Error::Overflow(input.to_owned()));
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Formats a duration as the shortest Inngest time string of whole units, e.g. `"2h30m10s"`.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_time_strings() {
        let ok: &[(&str, u64)] = &[
            ("1s", 1_000),
            ("1m", 60_000),
            ("5m", 300_000),
            ("2h30m10s", 9_010_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("1w2d", 777_600_000),
            ("500ms", 500),
            ("1.5s", 1_500),
            ("0.5h", 1_800_000),
            (" 30s ", 30_000),
            ("0", 0),
            ("1000us", 1),
            ("1500000ns", 1),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s).unwrap().as_millis() as u64, *ms, "{s}");
        }
        assert_eq!(parse_duration(""), Err(Error::Empty));
        for bad in ["s", "1", "10", "1x", "1.2.3s", "-1s", "m5", "1h 2m"] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
        assert!(matches!(
            parse_duration("3y"),
            Err(Error::UnknownUnit { unit, .. }) if unit == "y"
        ));
        assert!(matches!(
            parse_duration("999999999999w"),
            Err(Error::Overflow(_))
        ));
    }

    #[test]
    fn formats_round_trip() {
        for (ms, s) in [
            (9_010_000u64, "2h30m10s"),
            (0, "0s"),
            (1_500, "1s500ms"),
            (86_400_000, "1d"),
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(format_duration(d), s);
            assert_eq!(parse_duration(s).unwrap(), d);
        }
    }
}
