//! `surreal`, as SurrealDB ships it: the server's own entry point with the
//! community composer (the storage engines and routes of the open-source
//! server).

fn main() -> std::process::ExitCode {
    surrealdb_server::init(surrealdb_core::CommunityComposer())
}
