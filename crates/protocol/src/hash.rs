//! Step id hashing: the ids SDKs put in `op.id` and expect as keys of `steps`.

use sha1::{Digest, Sha1};

/// The user id of the op an SDK sends when a checkpointed run completes.
pub const RUN_COMPLETE_USER_ID: &str = "complete";

/// Hex SHA-1 of a step's user id; the `index`-th repeat (`index >= 1`) of the same
/// user id hashes `"<user_id>:<index>"` instead.
pub fn step_id_hash(user_id: &str, index: u32) -> String {
    let mut sha = Sha1::new();
    sha.update(user_id.as_bytes());
    if index > 0 {
        sha.update(format!(":{index}").as_bytes());
    }
    hex::encode(sha.finalize())
}

/// The id of the `RunComplete` op: `sha1("complete")`.
pub fn run_complete_id() -> String {
    step_id_hash(RUN_COMPLETE_USER_ID, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_captured_step_ids() {
        let cases: &[(&str, u32, &str)] = &[
            ("loop", 0, "1df823"),
            ("loop", 1, "a0cb75"),
            ("loop", 2, "dd0149"),
            ("a", 0, "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"),
            ("wait", 0, "daaad336276d15594d0e765f96c17cd746bf4971"),
            ("complete", 0, "0737c22d3bfae812339732d14d8c7dbd6dc4e09c"),
        ];
        for (id, index, prefix) in cases {
            let got = step_id_hash(id, *index);
            assert_eq!(got.len(), 40);
            assert!(got.starts_with(prefix), "{id}:{index} -> {got}");
        }
        assert_eq!(step_id_hash("loop:1", 0), step_id_hash("loop", 1));
        assert_eq!(
            run_complete_id(),
            "0737c22d3bfae812339732d14d8c7dbd6dc4e09c"
        );
    }
}
