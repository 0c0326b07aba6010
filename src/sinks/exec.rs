//! The `exec:<command>` action: run an operator-configured command with the event JSON on stdin.
//!
//! The command comes from the operator's configuration, so it runs through `/bin/sh -c` (pipes,
//! redirections and variables work as in a shell). Guarantees:
//! - The command runs in a process group of its own. On timeout the whole group is killed
//!   (SIGKILL), grandchildren included; when the command exits, anything it left running in its
//!   group is killed too, so nothing an action started outlives it (a process that wants to
//!   survive must leave the group on purpose, e.g. with `setsid`).
//! - Output is read to the end (a chatty command never blocks on a full pipe) but only the first
//!   [`OUTPUT_PREFIX`] bytes of stdout and stderr are kept.
//! - `TRADEHOOK_*` variables of the gateway (secrets, tokens) are not passed on; `env` adds
//!   variables for the command.
//!
//! Which failures are retriable: a timeout, a failed spawn (out of processes or memory) and a
//! non-zero exit are, because they are usually passing conditions (a busy host, a network call
//! inside the script) and the caller's retry schedule ends in the dead-letter queue anyway.
//! Exit code 65 (`EX_DATAERR` of sysexits.h, "the input data was incorrect") is the command's way
//! of saying the event itself is the problem: it is not retried.

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::SinkError;

/// Bytes of stdout and of stderr kept from one run.
pub const OUTPUT_PREFIX: usize = 1024;

/// Exit code with which a command refuses an event for good (sysexits.h `EX_DATAERR`).
pub const EXIT_BAD_INPUT: i32 = 65;

/// How long output readers may take after the command and its group are gone.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// What a successful (exit code 0) run printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The first [`OUTPUT_PREFIX`] bytes of stdout (UTF-8, lossy).
    pub stdout: String,
    /// The first [`OUTPUT_PREFIX`] bytes of stderr (UTF-8, lossy).
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Runs `command` with `/bin/sh -c`, writes `stdin` to it and waits at most `timeout`.
/// One attempt: see the module documentation for what is retriable.
pub async fn run(
    command: &str,
    stdin: &[u8],
    timeout: Duration,
    env: &[(&str, &str)],
) -> Result<ExecOutput, SinkError> {
    let started = Instant::now();
    let mut child = spawn(command, env)?;
    let group = child.id().and_then(|pid| i32::try_from(pid).ok());
    let input = child.stdin.take();
    let stdout = child.stdout.take().map(|pipe| tokio::spawn(read_prefix(pipe)));
    let stderr = child.stderr.take().map(|pipe| tokio::spawn(read_prefix(pipe)));
    let waited = tokio::time::timeout(timeout, async {
        // Stop writing once the command exits: a process it left behind may hold stdin open
        // without reading it.
        let mut write = std::pin::pin!(write_input(input, stdin));
        let mut written = false;
        loop {
            tokio::select! {
                status = child.wait() => break status,
                () = &mut write, if !written => written = true,
            }
        }
    })
    .await;
    // Whatever happened, nothing the command started may keep running (or keep its pipes open).
    if let Some(group) = group {
        kill_group(group);
    }
    let status = match waited {
        Ok(status) => status,
        Err(_) => {
            let _ = child.kill().await;
            let stderr = collect(stderr).await;
            return Err(SinkError::retriable(format!(
                "command timed out after {timeout:?}; its process group was killed{}",
                stderr_suffix(&stderr)
            )));
        }
    };
    let status = status.map_err(|e| SinkError::retriable(format!("waiting for the command failed: {e}")))?;
    let stdout = collect(stdout).await;
    let stderr = collect(stderr).await;
    if status.success() {
        return Ok(ExecOutput { stdout, stderr, elapsed: started.elapsed() });
    }
    Err(failure(status, &stderr))
}

fn spawn(command: &str, env: &[(&str, &str)]) -> Result<Child, SinkError> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TRADEHOOK_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.spawn().map_err(|e| SinkError::retriable(format!("cannot start /bin/sh for the command: {e}")))
}

/// Writes the event and closes stdin. A command that exits without reading it is fine (EPIPE).
async fn write_input(pipe: Option<tokio::process::ChildStdin>, input: &[u8]) {
    if let Some(mut pipe) = pipe {
        let _ = pipe.write_all(input).await;
        let _ = pipe.shutdown().await;
    }
}

/// Reads a pipe to its end, keeping the first [`OUTPUT_PREFIX`] bytes.
async fn read_prefix(mut pipe: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = OUTPUT_PREFIX.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

/// The output a reader kept; empty when it does not finish within [`OUTPUT_GRACE`] (a process
/// that left the group still holds the pipe).
async fn collect(reader: Option<tokio::task::JoinHandle<Vec<u8>>>) -> String {
    let Some(mut reader) = reader else { return String::new() };
    match tokio::time::timeout(OUTPUT_GRACE, &mut reader).await {
        Ok(Ok(bytes)) => crate::store::storable_text(&bytes),
        _ => {
            reader.abort();
            String::new()
        }
    }
}

/// SIGKILL to every process of the group; a group that is already gone is fine.
fn kill_group(group: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
    let _ = unsafe { libc::kill(-group, libc::SIGKILL) };
}

/// Messages never quote the command: it may carry credentials (a `curl -H "Authorization: …"`).
fn failure(status: ExitStatus, stderr: &str) -> SinkError {
    use std::os::unix::process::ExitStatusExt;
    let stderr = stderr_suffix(stderr);
    match status.code() {
        Some(EXIT_BAD_INPUT) => {
            SinkError::permanent(format!("command refused the event (exit code {EXIT_BAD_INPUT}){stderr}"))
        }
        Some(code) => SinkError::retriable(format!("command failed with exit code {code}{stderr}")),
        None => SinkError::retriable(format!(
            "command was killed by signal {}{stderr}",
            status.signal().unwrap_or(0)
        )),
    }
}

fn stderr_suffix(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {stderr}")
    }
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
