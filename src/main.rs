//! The `tradehook` binary: everything lives in the library; this only hands over to the CLI.

fn main() -> std::process::ExitCode {
    tradehook::cli::main()
}
