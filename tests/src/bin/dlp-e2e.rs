//! The `dlp` command line, built in the end-to-end test package (see `Cargo.toml`).

fn main() -> std::process::ExitCode {
    dlp::main()
}
