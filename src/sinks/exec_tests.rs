//! `exec` against real processes: stdin, exit codes, output bounds, timeouts and process groups.

use super::*;

const TEN_S: Duration = Duration::from_secs(10);

#[tokio::test]
async fn event_json_reaches_the_command_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("event.json");
    let file_text = file.to_str().unwrap();
    let event = br#"{"id":"e1","event":"order.filled"}"#;
    let output = run(r#"cat > "$EVENT_FILE""#, event, TEN_S, &[("EVENT_FILE", file_text)]).await.unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), event);
    assert!(output.stdout.is_empty() && output.stderr.is_empty());
}

#[tokio::test]
async fn stdout_and_stderr_prefixes_are_kept() {
    let output = run("echo out; echo err >&2", b"", TEN_S, &[]).await.unwrap();
    assert_eq!(output.stdout, "out\n");
    assert_eq!(output.stderr, "err\n");
}

#[tokio::test]
async fn nonzero_exit_is_a_retriable_error_with_code_and_stderr() {
    let error = run("echo 'broker said no' >&2; exit 3", b"{}", TEN_S, &[]).await.unwrap_err();
    assert!(error.retriable, "{error:?}");
    assert!(error.message.contains("exit code 3"), "{}", error.message);
    assert!(error.message.contains("broker said no"), "{}", error.message);
}

#[tokio::test]
async fn exit_code_65_refuses_the_event_for_good() {
    let error = run("exit 65", b"{}", TEN_S, &[]).await.unwrap_err();
    assert!(!error.retriable, "{error:?}");
    assert!(error.message.contains("65"), "{}", error.message);
}

#[tokio::test]
async fn output_is_bounded_and_a_chatty_command_does_not_block() {
    let started = Instant::now();
    let output = run("head -c 1000000 /dev/zero | tr '\\0' a; echo done >&2", b"", TEN_S, &[]).await.unwrap();
    assert_eq!(output.stdout.len(), OUTPUT_PREFIX);
    assert_eq!(output.stderr, "done\n");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_command_that_ignores_stdin_still_succeeds() {
    let big = vec![b'x'; 1 << 20];
    run("true", &big, TEN_S, &[]).await.unwrap();
}

#[tokio::test]
async fn timeout_kills_the_command_and_the_child_it_spawned() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let command = r#"sleep 30 & echo $! > "$PID_FILE"; sleep 30"#;
    let started = Instant::now();
    let error = run(command, b"", Duration::from_millis(500), &[("PID_FILE", pid_file.to_str().unwrap())])
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(error.retriable, "{error:?}");
    assert!(error.message.contains("timed out"), "{}", error.message);
    let child: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_gone(child).await;
}

#[tokio::test]
async fn processes_left_behind_are_killed_and_do_not_delay_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let started = Instant::now();
    run(r#"sleep 30 & echo $! > "$PID_FILE""#, b"", TEN_S, &[("PID_FILE", pid_file.to_str().unwrap())])
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    let child: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_gone(child).await;
}

#[tokio::test]
async fn a_process_left_holding_stdin_does_not_hold_the_result() {
    let big = vec![b'x'; 1 << 20];
    let started = Instant::now();
    // sh gives background jobs /dev/null as stdin unless told otherwise: hand it the pipe.
    run("exec 3<&0; sleep 30 <&3 3<&- &", &big, TEN_S, &[]).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

/// Waits up to 2 s for a process to be gone (or a zombie waiting for its new parent to reap it).
async fn assert_gone(pid: u32) {
    for _ in 0..40 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            // The state follows the parenthesised command name: `pid (comm) S …`.
            Ok(stat) if stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')) => {
                return
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("process {pid} still runs");
}
