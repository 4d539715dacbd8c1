//! Identifier newtypes. Each prints and parses as its canonical text form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ulid::Ulid;
use uuid::Uuid;

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Ulid);

        impl $name {
            /// A new id for the current time.
            pub fn new() -> Self {
                Self(Ulid::new())
            }

            /// The id as a 128-bit ULID.
            pub fn ulid(self) -> Ulid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ulid::DecodeError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ulid::from_string(s).map(Self)
            }
        }

        impl From<Ulid> for $name {
            fn from(u: Ulid) -> Self {
                Self(u)
            }
        }
    };
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

ulid_id!(
    /// Internal id of a stored event (a ULID: sortable by arrival).
    EventId
);
ulid_id!(
    /// Id of a function run (a ULID, sent to SDKs as `ctx.run_id`).
    RunId
);
ulid_id!(
    /// Id of a wait (a `waitForEvent`, a cancellation watch, or an invoke watch).
    WaitId
);
uuid_id!(
    /// Id of a synced app.
    AppId
);
uuid_id!(
    /// Internal id of a function (sent to SDKs as `ctx.fn_id`). Stable across re-syncs
    /// of the same app and function slug.
    FunctionId
);

/// Id of a queue item (a backend sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QueueItemId(pub i64);

impl fmt::Display for QueueItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for QueueItemId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let run = RunId::new();
        assert_eq!(run.to_string().parse::<RunId>().unwrap(), run);
        let app = AppId::new();
        assert_eq!(app.to_string().parse::<AppId>().unwrap(), app);
        assert_eq!("42".parse::<QueueItemId>().unwrap(), QueueItemId(42));
        assert!("nope".parse::<EventId>().is_err());
        assert_eq!(
            serde_json::to_string(&QueueItemId(7)).unwrap(),
            "7",
            "queue ids serialise as plain numbers"
        );
    }
}
