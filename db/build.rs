//! Rebuild when migrations change: `embed_migrations!` only tracks the files
//! that existed at the last build, not newly added migration folders.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
