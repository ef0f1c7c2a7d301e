//! Behaviour suite: every check in [`suite`] runs against every driver listed
//! in the `behaviour!` invocation below, each test on a fresh instance.
//!
//! Adding a driver is one line there plus a fixture function in
//! [`fixtures`] (return `None` to skip when its server is not available).
//! Adding a check is a function in [`suite`] plus its name in the list inside
//! the macro. Driver-specific tests live in their own modules (`local_driver`).

mod fixtures;
mod local_driver;
mod suite;

/// Expands to one `mod <driver>` with one `#[tokio::test]` per suite check.
macro_rules! behaviour {
    ($($driver:ident => $fixture:path),* $(,)?) => {
        $(
            mod $driver {
                behaviour!(@tests $fixture;
                    write_read_small,
                    write_read_empty,
                    write_read_large,
                    ranged_reads,
                    list_many_paginated,
                    list_sorted_with_kinds,
                    nested_paths,
                    unicode_names,
                    overwrite,
                    delete_file,
                    rename_file,
                    rename_dir,
                    rename_conflicts,
                    copy_file,
                    missing_is_not_found,
                    mkdir_rmdir,
                    stat_entries,
                    dotdot_refused,
                    capability_truth,
                    failed_write_leaves_nothing,
                    write_conflicts,
                    concurrent_writes,
                    probe_ok,
                );
            }
        )*
    };
    (@tests $fixture:path; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let Some(fixture) = $fixture().await else {
                    eprintln!("skipped: driver not available");
                    return;
                };
                crate::suite::$test(fixture.storage.clone()).await;
            }
        )*
    };
}

behaviour! {
    memory => crate::fixtures::memory,
    local => crate::fixtures::local,
}
