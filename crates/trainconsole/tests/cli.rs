//! The binary's answers to bad input, and a short real run end to end.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainconsole"))
}

fn shakespeare() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/tinyshakespeare.txt")
}

/// Run `command` expecting it to fail with exit code 1; returns its stderr.
fn fails_with_stderr(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "expected exit code 1 from {command:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Run `trainconsole train --preset tiny ARGS…` expecting failure; returns stderr.
fn train_fails(args: &[&str]) -> String {
    let runs = tempfile::tempdir().unwrap();
    let preset: &[&str] = if args.contains(&"--preset") { &[] } else { &["--preset", "tiny"] };
    fails_with_stderr(exe().args(["train", "--port", "0", "--no-progress", "--runs-dir"]).arg(runs.path()).args(preset).args(args))
}

/// Spawn `command` with its stdout piped; returns the child, its stdout, and its first line.
fn spawn_with_first_line(command: &mut Command) -> (std::process::Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    (child, stdout, first)
}

/// The first line `serve` prints for `runs`, after which it is stopped.
fn serve_first_line(runs: &Path) -> String {
    let (mut serve, _, line) = spawn_with_first_line(exe().args(["serve", "--port", "0", "--runs-dir"]).arg(runs));
    serve.kill().unwrap();
    serve.wait().unwrap();
    line
}

#[test]
fn bad_data_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let err = train_fails(&["--data", missing.to_str().unwrap()]);
    assert!(err.contains("missing.txt"), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "the cause is said once: {err}");

    let err = train_fails(&["--data", "/dev/zero"]);
    assert!(err.contains("/dev/zero") && err.contains("not a regular file"), "{err}");

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let err = train_fails(&["--data", empty.to_str().unwrap()]);
    assert!(err.contains("empty.txt") && err.contains("empty"), "{err}");

    let binary = dir.path().join("binary.txt");
    std::fs::write(&binary, b"hello \xff\xfe world").unwrap();
    let err = train_fails(&["--data", binary.to_str().unwrap()]);
    assert!(err.contains("UTF-8") && err.contains("6"), "names the offset of the bad byte: {err}");

    let short = dir.path().join("short.txt");
    std::fs::write(&short, b"too short for one context window").unwrap();
    let err = train_fails(&["--data", short.to_str().unwrap()]);
    assert!(err.contains("short.txt"), "{err}");
}

#[test]
fn unknown_preset_and_unwritable_runs_dir_and_port_in_use() {
    let data = shakespeare();
    let err = train_fails(&["--data", data.to_str().unwrap(), "--preset", "huge"]);
    assert!(err.contains("huge"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = fails_with_stderr(exe()
        .args(["train", "--preset", "tiny", "--port", "0", "--data"])
        .arg(&data)
        .arg("--runs-dir")
        .arg(file.join("runs")));
    assert!(err.contains("cannot use runs directory"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let runs = tempfile::tempdir().unwrap();
    let err = fails_with_stderr(exe()
        .args(["train", "--preset", "tiny", "--port", &port, "--data"])
        .arg(&data)
        .arg("--runs-dir")
        .arg(runs.path()));
    assert!(err.contains(&format!("port {port} is already in use")), "{err}");
}

#[test]
fn threads_must_be_a_positive_count() {
    let output = exe().args(["train", "--preset", "tiny", "--threads", "0"]).output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    // A usage error (clap's exit code 2) naming the flag and the accepted range.
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("invalid value '0' for '--threads <THREADS>'") && err.contains("1..=1024"), "{err}");
}

#[test]
fn a_tiny_run_completes_prints_a_summary_and_keeps_its_history() {
    let runs = tempfile::tempdir().unwrap();
    let (mut child, mut stdout, first) = spawn_with_first_line(
        exe()
            .args(["train", "--preset", "tiny", "--port", "0", "--no-progress", "--max-tokens", "4096", "--threads", "2", "--data"])
            .arg(shakespeare())
            .arg("--runs-dir")
            .arg(runs.path()),
    );
    assert!(first.contains("console at http://127.0.0.1:"), "{first}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    // 4096 tokens at 128 tokens a step (tiny: batch 4 × context 32) is 32 steps.
    assert!(rest.contains("completed at step 32: 4,096 tokens"), "{rest}");
    assert!(rest.contains("checkpoint "), "{rest}");
    let checkpoint = rest.rsplit("checkpoint ").next().unwrap().trim();
    assert!(Path::new(checkpoint).join("model.safetensors").is_file(), "{checkpoint}");

    // `serve` on the same runs directory shows it, completed, with every event.
    let line = serve_first_line(runs.path());
    assert!(line.contains("serving 1 run(s)"), "{line}");
}

#[test]
fn serve_creates_a_missing_runs_dir_and_refuses_a_file_as_runs_dir() {
    let dir = tempfile::tempdir().unwrap();
    // A runs directory that does not exist yet is created, and the first line says so.
    let runs = dir.path().join("new").join("runs");
    let line = serve_first_line(&runs);
    assert!(line.contains(&format!("serving 0 run(s) from the new runs directory {} at http://127.0.0.1:", runs.display())), "{line}");
    assert!(runs.join("trainconsole.sqlite3").is_file(), "the store was created");

    // An existing one is not called new.
    let line = serve_first_line(&runs);
    assert!(line.contains(&format!("serving 0 run(s) from {} at", runs.display())), "{line}");

    // A file, or a path under a file, is refused, naming it.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    for (args, path) in [(vec!["serve", "--port", "0"], file.clone()), (vec!["serve", "--port", "0"], file.join("runs"))] {
        let err = fails_with_stderr(exe().args(&args).arg("--runs-dir").arg(&path));
        assert!(err.contains(&format!("cannot use runs directory {}", path.display())) && err.contains("ot a directory"), "{err}");
    }
    let err = fails_with_stderr(exe().args(["train", "--preset", "tiny", "--port", "0", "--data"]).arg(shakespeare()).arg("--runs-dir").arg(&file));
    assert!(err.contains("cannot use runs directory") && err.contains("not a directory"), "{err}");
}

/// Start a tiny run with a budget it will not reach; returns the child and its first line.
fn start_long_tiny_run(runs: &Path, extra: &[&str]) -> (std::process::Child, BufReader<std::process::ChildStdout>, String) {
    spawn_with_first_line(
        exe()
            .args(["train", "--port", "0", "--no-progress", "--max-tokens", "100000000", "--data"])
            .arg(shakespeare())
            .arg("--runs-dir")
            .arg(runs)
            .args(extra),
    )
}

#[test]
fn sigterm_stops_cleanly_with_a_checkpoint_and_resume_continues_from_it() {
    let runs = tempfile::tempdir().unwrap();
    let (mut child, mut stdout, first) = start_long_tiny_run(runs.path(), &["--preset", "tiny"]);
    assert!(first.contains("console at"), "{first}");
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(rest.contains(" aborted at step "), "{rest}");
    let checkpoint = rest.rsplit("checkpoint ").next().unwrap().trim().to_string();
    assert!(Path::new(&checkpoint).join("meta.json").is_file(), "{checkpoint}");
    let step: u64 = rest.split(" aborted at step ").nth(1).unwrap().split(':').next().unwrap().parse().unwrap();

    // A preset that does not match the checkpoint is refused, with the reason.
    let err = fails_with_stderr(exe()
        .args(["train", "--port", "0", "--no-progress", "--preset", "small", "--resume", &checkpoint, "--data"])
        .arg(shakespeare())
        .arg("--runs-dir")
        .arg(runs.path()));
    assert!(err.contains("--preset small does not match the checkpoint"), "{err}");

    // Other text than the checkpoint was trained on is refused, naming both.
    let other = runs.path().join("other.txt");
    std::fs::write(&other, "other text, long enough for the tiny preset. ".repeat(40)).unwrap();
    let err = fails_with_stderr(exe()
        .args(["train", "--port", "0", "--no-progress", "--resume", &checkpoint, "--data"])
        .arg(&other)
        .arg("--runs-dir")
        .arg(runs.path()));
    assert!(err.contains("it was trained on") && err.contains("tinyshakespeare.txt") && err.contains("other.txt"), "{err}");

    // Resuming continues from the checkpoint's step, under a name that says so; without
    // --data it takes the text the checkpoint records.
    let (mut child, mut stdout, first) =
        spawn_with_first_line(exe().args(["train", "--port", "0", "--no-progress", "--resume", &checkpoint, "--runs-dir"]).arg(runs.path()));
    assert!(first.contains(&format!("(resumed from step {step})")), "{first}");
    std::thread::sleep(Duration::from_millis(800));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    let resumed_step: u64 = rest.split(" aborted at step ").nth(1).unwrap().split(':').next().unwrap().parse().unwrap();
    assert!(resumed_step > step, "resumed run went on from {step} to {resumed_step}: {rest}");
}
