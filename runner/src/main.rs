//! The `runner` binary: parses the command line and hands over to [`runner::cli`].

fn main() -> std::process::ExitCode {
    runner::cli::main()
}
