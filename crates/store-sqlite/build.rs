//! Rebuilds when a migration is added or changed: `sqlx::migrate!` embeds the files
//! at compile time, and Cargo does not otherwise watch that directory.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
}
