//! Keyset pagination shared by the listing queries.

use sluice_store::Page;

/// The page size asked for (0 means the default of 50).
pub(crate) fn page_limit(limit: u32) -> i64 {
    if limit == 0 { 50 } else { i64::from(limit) }
}

/// Cuts `items` (fetched with `limit + 1`) to a page with its next cursor.
pub(crate) fn page<T>(mut items: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Page<T> {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next = if more { items.last().map(cursor) } else { None };
    Page { items, next }
}
