//! The storage conformance suite: one set of cases every backend must pass.
//!
//! A backend instantiates it in its own `tests/` with
//! `sluice_store::conformance_suite!(make_store);`, where `make_store` is a path to an
//! `async fn() -> DynStore` returning a fresh, empty store on every call. The macro
//! expands to one `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per
//! case (so the calling crate needs `tokio` as a dependency), each calling the
//! same-named `pub async fn` here.

use crate::DynStore;

/// Expands to one tokio test per conformance case; see the [module docs](self).
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!(@cases $make;
            event_insert_and_dedupe_window,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::testing::$case($make().await).await;
            }
        )*
    };
}

/// Skeleton: filled in next.
pub async fn event_insert_and_dedupe_window(store: DynStore) {
    store.ping().await.expect("ping");
}
