//! `trainconsole run -- CMD` and the Python client against the real binary: the abort
//! handshake, force kill of a trainer that ignores SIGINT, and a console restarted while a
//! trainer reports over HTTP.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainconsole"))
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python")
}

/// A started process whose stdout is collected by a thread.
struct Started {
    child: Child,
    base: String,
    stdout: Arc<Mutex<String>>,
}

impl Started {
    fn output(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Wait for the process to exit (at most `secs`); returns its exit code.
    fn wait(&mut self, secs: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "still running after {secs} s; output:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `command` and wait until it prints the console's address.
fn start(command: &mut Command) -> Started {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = Arc::new(Mutex::new(String::new()));
    let (pipe, sink) = (child.stdout.take().unwrap(), stdout.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut all = sink.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = stdout.lock().unwrap().clone();
        if let Some(at) = text.find("http://127.0.0.1:") {
            let port: String = text[at + 17..].chars().take_while(char::is_ascii_digit).collect();
            return Started { child, base: format!("http://127.0.0.1:{port}"), stdout };
        }
        assert!(Instant::now() < deadline, "no console address printed: {text}");
        assert!(child.try_wait().unwrap().is_none(), "exited before printing its address: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(10))).build().into()
}

fn get(url: &str) -> Value {
    let mut response = agent().get(url).call().unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

fn post(url: &str) -> (u16, Value) {
    let mut response = agent().post(url).send("").unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null))
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Serve `runs` and read run `id`'s summary and every event.
fn stored_run(runs: &Path) -> (Value, Vec<Value>) {
    let serve = start(exe().args(["serve", "--port", "0", "--runs-dir"]).arg(runs));
    let id = get(&format!("{}/api/runs", serve.base))["runs"][0]["id"].as_str().unwrap().to_string();
    let summary = get(&format!("{}/api/runs/{id}", serve.base));
    let events = get(&format!("{}/api/runs/{id}/events?limit=10000", serve.base))["events"].as_array().unwrap().clone();
    (summary, events)
}

fn states(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["state"].as_str()).collect()
}

#[test]
fn the_toy_trainer_under_run_answers_an_abort_with_a_checkpoint() {
    let runs = tempfile::tempdir().unwrap();
    let checkpoints = runs.path().join("toy-checkpoints");
    let mut run = start(
        exe()
            .args(["run", "--port", "0", "--grace-secs", "30", "--runs-dir"])
            .arg(runs.path())
            .args(["--", "python3"])
            .arg(examples().join("train_toy.py"))
            .args(["--steps", "100000", "--checkpoint-dir"])
            .arg(&checkpoints),
    );
    let id = wait_for("the toy's first steps", 30, || {
        let runs = get(&format!("{}/api/runs", run.base));
        let run = &runs["runs"][0];
        (run["step"].as_u64() >= Some(5)).then(|| run["id"].as_str().unwrap().to_string())
    });
    let summary = get(&format!("{}/api/runs/{id}", run.base));
    assert_eq!(summary["name"], "toy linear regression", "the trainer's own run_start names the run");
    assert_eq!(summary["total_steps"], 100_000);
    assert_eq!(summary["force_kill_grace_secs"], 30.0);
    let (status, answer) = post(&format!("{}/api/runs/{id}/abort", run.base));
    assert_eq!((status, answer["state"].as_str()), (202, Some("stopping")));
    assert_eq!(run.wait(30), Some(0), "the toy exits with status 0 after saving");

    let (summary, events) = stored_run(runs.path());
    assert_eq!(summary["state"], "aborted");
    assert_eq!(states(&events), ["stopping", "stopping", "aborted"], "console's request, trainer's answer, trainer's end");
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let request = events.iter().position(|e| e["message"] == "abort requested").unwrap();
    assert_eq!(kinds[kinds.len() - 4..], ["state", "checkpoint", "state", "exit"], "stopping, checkpoint, aborted, exit: {kinds:?}");
    assert!(request < kinds.len() - 4);
    let checkpoint = &events[kinds.len() - 3];
    let path = checkpoint["path"].as_str().unwrap();
    assert!(path.starts_with(checkpoints.to_str().unwrap()), "{path}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(saved["step"], checkpoint["step"]);
    assert_eq!(saved["step"], summary["step"], "saved at the last reported step");
    assert_eq!(summary["checkpoint_path"], path);
    assert_eq!(summary["exit"]["exit_code"], 0);
    assert!(summary["exit"]["output_tail"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().starts_with("train_toy: aborted at step")));
    // The trainer's stdout events did not reach the terminal; its other lines did.
    let output = run.output();
    assert!(output.contains("train_toy: aborted at step") && !output.contains("\"kind\""), "{output}");
}

/// A trainer that ignores SIGINT and SIGTERM: prints a step event and a plain line every 0.1 s.
const STUBBORN: &str = r#"trap '' INT TERM
i=0
while :; do
  i=$((i+1))
  echo "{\"kind\":\"step\",\"time\":$(date +%s),\"step\":$i,\"tokens\":$((i*100)),\"loss\":NaN}"
  echo "plain line $i"
  sleep 0.1
done"#;

#[test]
fn force_kill_ends_a_trainer_that_ignores_sigint_and_records_the_signal() {
    let runs = tempfile::tempdir().unwrap();
    let mut run = start(exe().args(["run", "--port", "0", "--grace-secs", "1", "--name", "stubborn", "--runs-dir"]).arg(runs.path()).args(["--", "sh", "-c", STUBBORN]));
    let runs_url = format!("{}/api/runs", run.base);
    let id = wait_for("steps", 30, || {
        let runs = get(&runs_url);
        (runs["runs"][0]["step"].as_u64() >= Some(2)).then(|| runs["runs"][0]["id"].as_str().unwrap().to_string())
    });
    let run_url = format!("{runs_url}/{id}");
    assert_eq!(get(&run_url)["loss"], "NaN", "a bare NaN on stdout is kept");
    assert_eq!(post(&format!("{run_url}/abort")).0, 202);
    let (status, answer) = post(&format!("{run_url}/kill"));
    assert_eq!(status, 409, "too early: {answer}");
    assert!(answer["error"].as_str().unwrap().contains("grace period left"), "{answer}");

    // SIGINT is ignored: the run stays stopping, and its steps still arrive.
    let step = get(&run_url)["step"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let summary = get(&run_url);
    assert_eq!(summary["state"], "stopping");
    assert!(summary["step"].as_u64().unwrap() > step, "metrics still arrive while stopping");
    assert!(run.child.try_wait().unwrap().is_none());

    let (status, answer) = post(&format!("{run_url}/kill"));
    assert_eq!((status, answer["state"].as_str()), (202, Some("stopping")), "{answer}");
    // SIGTERM is ignored too: SIGKILL follows 5 s later.
    assert_eq!(run.wait(30), Some(128 + 9));

    let (summary, events) = stored_run(runs.path());
    assert_eq!(summary["name"], "stubborn");
    assert_eq!(summary["state"], "aborted");
    assert!(summary["message"].as_str().unwrap().contains("killed by SIGKILL"), "{summary}");
    assert_eq!(summary["exit"]["signal"], "SIGKILL");
    assert_eq!(summary["exit"].get("exit_code"), None);
    let tail = summary["exit"]["output_tail"].as_array().unwrap();
    assert_eq!(tail.len(), 50, "the last 50 lines");
    let last_step = summary["step"].as_u64().unwrap();
    assert_eq!(tail.last().unwrap(), &Value::from(format!("plain line {last_step}")));
    assert_eq!(states(&events), ["stopping", "aborted"]);
}

#[test]
fn a_trainer_that_fails_is_recorded_failed_and_non_event_lines_pass_through() {
    let runs = tempfile::tempdir().unwrap();
    let script = r#"echo hello; echo '{"kind":"step","time":1800000000,"step":1,"tokens":64,"loss":Infinity}'; echo '{"not": "an event"}'; echo oops >&2; exit 3"#;
    let mut run = start(exe().args(["run", "--port", "0", "--runs-dir"]).arg(runs.path()).args(["--", "sh", "-c", script]));
    assert_eq!(run.wait(30), Some(3), "the child's exit status is passed on");
    let output = run.output();
    assert!(output.contains("hello\n") && output.contains("{\"not\": \"an event\"}\n"), "{output}");
    let (summary, events) = stored_run(runs.path());
    assert_eq!(summary["state"], "failed");
    assert_eq!(summary["message"], "the trainer's process ended (exit status 3)");
    assert_eq!(summary["loss"], "Infinity");
    assert_eq!(summary["exit"]["exit_code"], 3);
    let tail: Vec<&str> = summary["exit"]["output_tail"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(tail.len(), 3);
    assert!(tail.contains(&"hello") && tail.contains(&"oops") && tail.contains(&"{\"not\": \"an event\"}"), "{tail:?}");
    assert_eq!(events.iter().filter(|e| e["kind"] == "step").count(), 1);
}

#[test]
fn a_trainer_cannot_report_its_own_exit_nor_steps_after_its_end() {
    let runs = tempfile::tempdir().unwrap();
    let fake_exit = r#"{"kind":"exit","time":1800000001,"signal":"SIGKILL","output_tail":["fake"]}"#;
    let script = format!(
        r#"echo '{{"kind":"step","time":1800000000,"step":1,"tokens":64,"loss":2}}'; echo '{fake_exit}'; echo '{{"kind":"state","time":1800000002,"state":"completed"}}'; echo '{{"kind":"step","time":1800000003,"step":2,"tokens":128,"loss":2}}'; exit 7"#
    );
    // A long command line: the run is named after it, cut to the name limit.
    let long_arg = "x".repeat(300);
    let mut run = start(exe().args(["run", "--port", "0", "--runs-dir"]).arg(runs.path()).args(["--", "sh", "-c", &script, &long_arg]));
    assert_eq!(run.wait(30), Some(7));
    assert!(run.output().contains(&format!("{fake_exit}\n")), "the `exit` line passes through as text: {}", run.output());
    let (summary, events) = stored_run(runs.path());
    assert_eq!(summary["exit"]["exit_code"], 7, "the real exit, not the trainer's: {summary}");
    assert_eq!(summary["exit"]["signal"], Value::Null);
    assert_eq!(events.iter().filter(|e| e["kind"] == "exit").count(), 1);
    assert_eq!((summary["state"].as_str(), summary["step"].as_u64()), (Some("completed"), Some(1)), "no step after the end");
    let name = summary["name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 200, "{name}");
    let command = summary["config"]["command"].as_str().unwrap();
    assert!(command.ends_with(&long_arg), "the config keeps the whole command: {command}");
    assert!(name.ends_with('…') && command.starts_with(name.trim_end_matches('…')), "{name}");
}

#[test]
fn run_with_server_reports_to_a_running_console_and_passes_its_abort_on() {
    let runs = tempfile::tempdir().unwrap();
    let console = start(exe().args(["serve", "--port", "0", "--runs-dir"]).arg(runs.path()));
    let mut run = start(
        exe()
            .args(["run", "--grace-secs", "5", "--server", &console.base, "--", "python3"])
            .arg(examples().join("train_toy.py"))
            .args(["--steps", "100000", "--checkpoint-dir"])
            .arg(runs.path().join("toy-checkpoints")),
    );
    assert!(run.output().contains(&format!("console at {}/runs/", console.base)), "{}", run.output());
    let runs_url = format!("{}/api/runs", console.base);
    let id = wait_for("steps on the running console", 30, || {
        let runs = get(&runs_url);
        (runs["runs"][0]["step"].as_u64() >= Some(5)).then(|| runs["runs"][0]["id"].as_str().unwrap().to_string())
    });
    assert_eq!(get(&format!("{runs_url}/{id}"))["force_kill_grace_secs"], 5.0);
    assert_eq!(post(&format!("{runs_url}/{id}/abort")).0, 202);
    assert_eq!(run.wait(30), Some(0));
    let summary = get(&format!("{runs_url}/{id}"));
    assert_eq!(summary["state"], "aborted");
    assert_eq!(summary["exit"]["exit_code"], 0);
    assert_eq!(summary["checkpoint_step"], summary["step"]);
    let events = get(&format!("{runs_url}/{id}/events?limit=10000"))["events"].as_array().unwrap().clone();
    let steps: Vec<u64> = events.iter().filter(|e| e["kind"] == "step").map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (1..=steps.len() as u64).collect::<Vec<_>>(), "every step once");
    assert_eq!(states(&events), ["stopping", "stopping", "aborted"]);
}

#[test]
fn a_command_that_cannot_start_fails_the_run_with_the_reason() {
    let runs = tempfile::tempdir().unwrap();
    let output = exe().args(["run", "--port", "0", "--runs-dir"]).arg(runs.path()).args(["--", "/no/such/trainer", "--x"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot start `/no/such/trainer --x`: No such file or directory"), "{stderr}");
    let (summary, _) = stored_run(runs.path());
    assert_eq!(summary["state"], "failed");
    assert!(summary["message"].as_str().unwrap().starts_with("cannot start `/no/such/trainer --x`"), "{summary}");

    let err = String::from_utf8_lossy(&exe().args(["run", "--port", "0", "--runs-dir"]).arg(runs.path()).output().unwrap().stderr).into_owned();
    assert!(err.contains("CMD ARGS"), "the command is required: {err}");
}

#[test]
fn a_trainer_reporting_over_http_loses_and_doubles_nothing_when_the_console_restarts() {
    let runs = tempfile::tempdir().unwrap();
    let serve_args = |port: &str| {
        let mut command = exe();
        command.args(["serve", "--port", port, "--runs-dir"]).arg(runs.path());
        command
    };
    let mut console = start(&mut serve_args("0"));
    let port = console.base.rsplit(':').next().unwrap().to_string();
    let steps = 300;
    let mut toy = Command::new("python3")
        .arg(examples().join("train_toy.py"))
        .args(["--steps", &steps.to_string(), "--step-secs", "0.02", "--checkpoint-dir"])
        .arg(runs.path().join("toy-checkpoints"))
        .env("TRAINCONSOLE_URL", &console.base)
        .env_remove("TRAINCONSOLE_EVENTS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let runs_url = format!("{}/api/runs", console.base);
    let before_kill = wait_for("the toy's first steps", 30, || {
        let step = get(&runs_url)["runs"][0]["step"].as_u64().unwrap_or(0);
        (step >= 20).then_some(step)
    });
    // kill -9: no chance to finish anything.
    console.child.kill().unwrap();
    console.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let console = start(&mut serve_args(&port));
    let status = wait_for("the toy to finish", 120, || toy.try_wait().unwrap());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut toy.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("cannot reach the console"), "the client said the console was away: {stderr}");

    let runs = get(&format!("{}/api/runs", console.base));
    let id = runs["runs"][0]["id"].as_str().unwrap();
    let summary = get(&format!("{}/api/runs/{id}", console.base));
    let events = get(&format!("{}/api/runs/{id}/events?limit=10000", console.base))["events"].as_array().unwrap().clone();
    let logged: Vec<u64> = events.iter().filter(|e| e["kind"] == "step").map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(logged, (1..=steps).collect::<Vec<_>>(), "every step once, in order (killed at step {before_kill})");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(events.iter().filter(|e| e["kind"] == "eval").count(), steps as usize / 50);
    assert_eq!(events.iter().filter(|e| e["kind"] == "checkpoint").count(), 1);
    assert_eq!(summary["state"], "completed");
    assert_eq!(summary["step"], steps);
    assert_eq!(summary["tokens"], steps * 32 * 16);
}

#[test]
fn the_python_client_cuts_a_long_run_name_to_the_consoles_limit() {
    let runs = tempfile::tempdir().unwrap();
    let console = start(exe().args(["serve", "--port", "0", "--runs-dir"]).arg(runs.path()));
    let script = "import sys; from trainconsole_client import Run\n\
                  run = Run(name='n' * 300, url=sys.argv[1], total_steps=1)\n\
                  run.log(step=1, tokens=10, loss=2.0)\n\
                  sys.exit(0 if run.finish() else 1)\n";
    let status = Command::new("python3").args(["-c", script, &console.base]).env("PYTHONPATH", examples()).env_remove("TRAINCONSOLE_EVENTS").status().unwrap();
    assert!(status.success());
    let summary = &get(&format!("{}/api/runs", console.base))["runs"][0];
    assert_eq!((summary["state"].as_str(), summary["step"].as_u64()), (Some("completed"), Some(1)));
    assert_eq!(summary["name"], format!("{}…", "n".repeat(199)));
}
