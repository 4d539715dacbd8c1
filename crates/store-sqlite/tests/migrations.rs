//! Both dialects' migrations carry the same version numbers and descriptions, and
//! create the same tables and columns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn migrations_dir(dialect: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(dialect)
}

/// `version_description.sql` file names, sorted.
fn versions(dialect: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(migrations_dir(dialect))
        .expect("read migrations dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    names
}

/// Table → column names, from the `CREATE TABLE` statements of all migrations.
fn tables(dialect: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for name in versions(dialect) {
        let sql = std::fs::read_to_string(migrations_dir(dialect).join(&name)).expect("read sql");
        let sql: String = sql
            .lines()
            .map(|l| l.split("--").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for stmt in sql.split(';') {
            let stmt = stmt.trim();
            let Some(rest) = stmt.strip_prefix("CREATE TABLE ") else {
                continue;
            };
            let (table, body) = rest.split_once('(').expect("table body");
            let body = &body[..body.rfind(')').expect("closing paren")];
            let mut columns = Vec::new();
            let mut depth = 0;
            let mut current = String::new();
            for ch in body.chars() {
                match ch {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        columns.push(std::mem::take(&mut current));
                        continue;
                    }
                    _ => {}
                }
                current.push(ch);
            }
            columns.push(current);
            let columns = columns
                .iter()
                .filter_map(|c| c.split_whitespace().next())
                .filter(|c| !matches!(*c, "PRIMARY" | "UNIQUE" | "FOREIGN" | "CHECK"))
                .map(|c| c.trim_matches('"').to_string())
                .collect();
            out.insert(table.trim().to_string(), columns);
        }
    }
    out
}

#[test]
fn sqlite_and_postgres_migrations_match() {
    let (sqlite, postgres) = (versions("sqlite"), versions("postgres"));
    assert!(!sqlite.is_empty(), "no sqlite migrations found");
    assert_eq!(sqlite, postgres, "migration files must match one to one");
    let (sqlite, postgres) = (tables("sqlite"), tables("postgres"));
    assert!(
        sqlite.contains_key("queue_items"),
        "parsed tables: {sqlite:?}"
    );
    assert_eq!(sqlite, postgres, "tables and columns must match");
}
