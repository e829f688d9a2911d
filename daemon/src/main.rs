//! The `certkeeper` binary: parses the command line and hands over to [`certkeeper::cli`].

fn main() -> std::process::ExitCode {
    certkeeper::cli::main()
}
