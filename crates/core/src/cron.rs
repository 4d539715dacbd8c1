//! Cron schedules for cron triggers.
//!
//! Accepted forms:
//! - five fields, `min hour day-of-month month day-of-week` (`*/5 * * * *`);
//! - six or seven fields, with seconds first and an optional year last;
//! - descriptors: `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily`
//!   (`@midnight`), `@hourly`, and `@every <time string>`;
//! - any of these after a `TZ=<zone> ` or `CRON_TZ=<zone> ` prefix (IANA names such as
//!   `Europe/Paris`); times are UTC otherwise.
//!
//! Days of the week count as in standard cron: `0` (or `7`) is Sunday, `1` Monday, …,
//! `6` Saturday; names (`MON`, `Mon-Fri`) work too. When both day fields are
//! restricted (neither is `*` or `?`) a day matches if either does, as in Vixie cron
//! and the Go `robfig/cron` the Inngest server uses: `0 9 1 * MON` fires on the 1st and
//! on every Monday. (The `cron` crate alone would require both, so such an expression
//! is two schedules here, one per day field, and the next tick is the earlier one.)

use crate::time::Millis;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a cron expression was rejected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The expression does not parse.
    #[error("invalid cron expression {expr:?}: {message}")]
    Invalid {
        /// The expression.
        expr: String,
        /// What is wrong.
        message: String,
    },
    /// The time zone is not an IANA zone name.
    #[error("unknown time zone {zone:?} in cron expression; use an IANA name like Europe/Paris")]
    UnknownZone {
        /// The zone as written.
        zone: String,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone)]
enum Kind {
    /// One schedule, or two when both day fields are restricted (either matches).
    Fields(Vec<::cron::Schedule>),
    Every(Duration),
}

/// A parsed cron schedule.
#[derive(Clone)]
pub struct Schedule {
    source: String,
    tz: Tz,
    kind: Kind,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("source", &self.source)
            .field("tz", &self.tz)
            .finish()
    }
}

impl Schedule {
    /// Parses a cron expression (see the module docs for the forms).
    pub fn parse(expr: &str) -> Result<Self> {
        let invalid = |message: String| Error::Invalid {
            expr: expr.to_owned(),
            message,
        };
        let mut rest = expr.trim();
        let mut tz = Tz::UTC;
        for prefix in ["CRON_TZ=", "TZ="] {
            if let Some(after) = rest.strip_prefix(prefix) {
                let (zone, spec) = after
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| invalid("nothing after the time zone".into()))?;
                tz = zone.parse().map_err(|_| Error::UnknownZone {
                    zone: zone.to_owned(),
                })?;
                rest = spec.trim();
                break;
            }
        }
        let kind = if let Some(every) = rest.strip_prefix("@every") {
            let d = sluice_protocol::parse_duration(every).map_err(|e| invalid(e.to_string()))?;
            if d < Duration::from_secs(1) {
                return Err(invalid("@every needs at least 1s".into()));
            }
            Kind::Every(d)
        } else {
            let specs = match rest {
                "@annually" => vec!["@yearly".to_owned()],
                "@midnight" => vec!["@daily".to_owned()],
                s if s.starts_with('@') => vec![s.to_owned()],
                s => fields(s).map_err(invalid)?,
            };
            let schedules = specs
                .iter()
                .map(|spec| ::cron::Schedule::from_str(spec).map_err(|e| invalid(e.to_string())))
                .collect::<Result<Vec<_>>>()?;
            Kind::Fields(schedules)
        };
        Ok(Self {
            source: expr.trim().to_owned(),
            tz,
            kind,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The time zone the schedule runs in.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The first tick strictly after `after`; `None` if there is none (a past year).
    pub fn next_after(&self, after: Millis) -> Option<Millis> {
        match &self.kind {
            Kind::Every(d) => Some(after.plus(*d)),
            Kind::Fields(schedules) => {
                // Ticks are whole seconds: a tick after the floored second is after `after`.
                let secs = after.0.div_euclid(1000);
                let start: DateTime<Tz> = self
                    .tz
                    .from_utc_datetime(&DateTime::<Utc>::from_timestamp(secs, 0)?.naive_utc());
                let next = schedules
                    .iter()
                    .filter_map(|schedule| schedule.after(&start).next())
                    .min()?;
                Some(Millis(next.with_timezone(&Utc).timestamp_millis()))
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// Rewrites 5, 6 or 7 fields into the `cron` crate's 6/7-field form, with its
/// day-of-week numbering (1 = Sunday … 7 = Saturday). When both day fields are
/// restricted, two specs: the days of the month with any weekday, and the weekdays on
/// any day of the month (a day matching either is a tick).
fn fields(spec: &str) -> std::result::Result<Vec<String>, String> {
    let mut parts: Vec<String> = spec.split_whitespace().map(str::to_owned).collect();
    match parts.len() {
        5 => parts.insert(0, "0".to_owned()),
        6 | 7 => {}
        n => return Err(format!("expected 5 fields (or 6/7 with seconds), got {n}")),
    }
    parts[5] = day_of_week(&parts[5])?;
    let any = |field: &str| matches!(field, "*" | "?");
    if any(&parts[3]) || any(&parts[5]) {
        return Ok(vec![parts.join(" ")]);
    }
    let mut by_weekday = parts.clone();
    by_weekday[3] = "*".to_owned();
    parts[5] = "*".to_owned();
    Ok(vec![parts.join(" "), by_weekday.join(" ")])
}

/// Shifts each number of a day-of-week field from 0–7 (0 and 7 = Sunday) to the
/// `cron` crate's 1–7 (1 = Sunday). Steps (`/n`) and names are left alone.
fn day_of_week(field: &str) -> std::result::Result<String, String> {
    let shift = |tok: &str| -> std::result::Result<String, String> {
        match tok.parse::<u8>() {
            Ok(n @ 0..=6) => Ok((n + 1).to_string()),
            Ok(7) => Ok("1".to_owned()),
            Ok(n) => Err(format!("day of week {n} is out of range 0-7")),
            Err(_) => Ok(tok.to_owned()),
        }
    };
    field
        .split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            let range = match range.split_once('-') {
                // `5-7` (Fri–Sun) would wrap once shifted; `5-0`/`5-7` become Fri–Sat plus Sunday.
                Some((a, b)) if matches!(b, "7" | "0") && step.is_none() && a != "0" => {
                    format!("{}-7,1", shift(a)?)
                }
                Some((a, b)) => format!("{}-{}", shift(a)?, shift(b)?),
                None => shift(range)?,
            };
            Ok(match step {
                Some(s) => format!("{range}/{s}"),
                None => range,
            })
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(|items| items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Millis {
        Millis::from(rfc3339.parse::<DateTime<Utc>>().unwrap())
    }

    #[test]
    fn next_ticks() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "*/5 * * * *",
                "2026-12-04T15:02:30Z",
                "2026-12-04T15:05:00Z",
            ),
            (
                "*/5 * * * *",
                "2026-12-04T15:05:00Z",
                "2026-12-04T15:10:00Z",
            ),
            (
                "*/5 * * * *",
                "2026-12-04T15:04:59.999Z",
                "2026-12-04T15:05:00Z",
            ),
            (
                "0 9 * * 1-5",
                "2026-12-04T10:00:00Z",
                "2026-12-07T09:00:00Z",
            ), // Fri → Mon
            ("0 9 * * 0", "2026-12-04T10:00:00Z", "2026-12-06T09:00:00Z"), // Sunday
            ("0 9 * * 7", "2026-12-04T10:00:00Z", "2026-12-06T09:00:00Z"), // Sunday too
            ("0 9 * * 6", "2026-12-04T10:00:00Z", "2026-12-05T09:00:00Z"), // Saturday
            (
                "0 9 * * 5-7",
                "2026-12-05T10:00:00Z",
                "2026-12-06T09:00:00Z",
            ), // Fri–Sun
            (
                "0 9 * * MON",
                "2026-12-04T10:00:00Z",
                "2026-12-07T09:00:00Z",
            ),
            ("30 0 1 * *", "2026-12-04T10:00:00Z", "2027-01-01T00:30:00Z"),
            // Both day fields restricted: the 1st or a Monday, whichever comes first.
            (
                "0 9 1 * MON",
                "2026-12-04T10:00:00Z",
                "2026-12-07T09:00:00Z",
            ),
            ("0 9 1 * 1", "2026-12-28T10:00:00Z", "2027-01-01T09:00:00Z"),
            (
                "0 9 */10 * 0",
                "2026-12-04T10:00:00Z",
                "2026-12-06T09:00:00Z",
            ),
            (
                "0 9 */10 * 0",
                "2026-12-06T10:00:00Z",
                "2026-12-11T09:00:00Z",
            ),
            // One restricted: only that one counts.
            ("0 9 ? * 1", "2026-12-04T10:00:00Z", "2026-12-07T09:00:00Z"),
            ("0 9 15 * *", "2026-12-04T10:00:00Z", "2026-12-15T09:00:00Z"),
            (
                "15 */10 * * * *",
                "2026-12-04T10:00:00Z",
                "2026-12-04T10:00:15Z",
            ),
            (
                "0 0 0 1 1 * 2027",
                "2026-12-04T10:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            ("@hourly", "2026-12-04T10:20:00Z", "2026-12-04T11:00:00Z"),
            ("@daily", "2026-12-04T10:20:00Z", "2026-12-05T00:00:00Z"),
            ("@midnight", "2026-12-04T10:20:00Z", "2026-12-05T00:00:00Z"),
            ("@weekly", "2026-12-04T10:20:00Z", "2026-12-06T00:00:00Z"),
            ("@monthly", "2026-12-04T10:20:00Z", "2027-01-01T00:00:00Z"),
            ("@annually", "2026-12-04T10:20:00Z", "2027-01-01T00:00:00Z"),
            ("@every 90s", "2026-12-04T10:20:00Z", "2026-12-04T10:21:30Z"),
            // Paris is UTC+1 in winter, UTC+2 in summer.
            (
                "TZ=Europe/Paris 0 9 * * *",
                "2026-12-04T10:00:00Z",
                "2026-12-05T08:00:00Z",
            ),
            (
                "CRON_TZ=Europe/Paris 0 9 * * *",
                "2026-07-04T10:00:00Z",
                "2026-07-05T07:00:00Z",
            ),
            (
                "TZ=America/New_York @daily",
                "2026-12-04T10:00:00Z",
                "2026-12-05T05:00:00Z",
            ),
        ];
        for (expr, after, want) in cases {
            let schedule = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(
                schedule.next_after(at(after)),
                Some(at(want)),
                "{expr} after {after}"
            );
        }
        let past = Schedule::parse("0 0 0 1 1 * 2020").unwrap();
        assert_eq!(past.next_after(at("2026-01-01T00:00:00Z")), None);
        assert_eq!(
            Schedule::parse("TZ=Europe/Paris */5 * * * *")
                .unwrap()
                .time_zone(),
            Tz::Europe__Paris
        );
    }

    #[test]
    fn rejects_bad_expressions() {
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* * * * 8",
            "* * * * * * * *",
            "@fortnightly",
            "@every",
            "@every 10ms",
            "TZ=Europe/Paris",
        ] {
            assert!(
                matches!(Schedule::parse(bad), Err(Error::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Schedule::parse("TZ=Mars/Olympus 0 9 * * *"),
            Err(Error::UnknownZone { .. })
        ));
    }
}
