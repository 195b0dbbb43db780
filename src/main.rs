//! The `strata` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    give_parts_their_own_pages();
    // `.env` before anything reads the environment: the log filter (RUST_LOG) and the
    // command line's environment defaults (STRATA_URL, API_TOKEN, ...) too.
    let dotenv = strata::config::load_dotenv();
    strata::cli::run(strata::cli::Cli::parse(), dotenv)
}

/// Part-sized buffers (S3's smallest part is 5 MiB) each get pages of their own, handed
/// back when the part has travelled. glibc would otherwise raise its threshold past
/// them and keep them in per-thread arenas, where the resident size outgrows what is in
/// use by tens of megabytes, differently on every run.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_parts_their_own_pages() {
    const PART_SIZED: libc::c_int = 4 << 20;
    // SAFETY: mallopt sets one malloc parameter; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, PART_SIZED);
        // Smaller buffers are reused as before, not handed back and faulted in anew:
        // fixing one threshold fixes the other at 128 KiB, where glibc's own rule keeps
        // twice the first.
        libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * PART_SIZED);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_parts_their_own_pages() {}
