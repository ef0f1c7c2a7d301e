//! The behaviour suite (`berth_storage::testkit`) against every engine, each
//! built through `berth_engines::build` from a config, as the service does.
//! One file per engine family; each invokes `behaviour_suite!` for its
//! fixtures. Fixtures of engines that need an emulator skip when its
//! `BERTH_TEST_*` endpoint is unset, and fail instead under
//! `BERTH_REQUIRE_EMULATORS=1` (set by scripts/test.sh).

mod azure;
mod compose;
mod gcs;
mod layers;
mod native;
mod s3;
mod support;
