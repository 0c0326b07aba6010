//! The `tradehook` binary: everything lives in the library; this only hands over to the CLI.

/// mimalloc instead of glibc malloc: the request path allocates small buffers on two threads and
/// glibc's arenas showed up as ~11% of worker time in `perf` under `tradehook bench`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tradehook::cli::main()
}
