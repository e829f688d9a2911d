//! `surreal`, as SurrealDB ships it: the server's own entry point with the
//! community composer (the storage engines and routes of the open-source
//! server).

// SurrealDB's query engine is deeply nested async code: computing its
// layout needs more than the default limit, as in SurrealDB's own crate.
#![recursion_limit = "256"]

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_core::CommunityComposer())
}
