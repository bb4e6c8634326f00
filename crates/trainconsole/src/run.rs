//! `trainconsole run [--name NAME] [--grace-secs S] [--server URL] -- CMD ARGS…`: run any
//! trainer as a child process, watch it in the console and stop it from there.
//!
//! The child runs in a process group of its own, with stdin closed. Each line of its stdout
//! that is a JSON object in the event wire format (docs/api.md) is an event of the run; every
//! other line goes on to this terminal, as does its stderr, and the last
//! [`OUTPUT_TAIL_LINES`] of them are kept. The run is reported to a console of this process's
//! own, or with `--server` to a running one over HTTP (`POST /api/runs/{id}/events`).
//!
//! Abort is a handshake: the console's abort request reaches the child as SIGINT; the
//! trainer reports `state: stopping`, saves and reports a `checkpoint`, reports
//! `state: aborted` and exits. If it has not exited [`RunArgs::grace_secs`] after the
//! request, the page offers Force kill: SIGTERM to the child's process group, then SIGKILL
//! [`TERM_TO_KILL`] later. When the child exits, the run records how (`exit` event) and, if
//! the trainer did not report an end itself, ends as `aborted` (after an abort request),
//! `completed` (exit status 0) or `failed`.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use trainconsole_protocol::{Event, EventBody, ProcessExit, RunStart, RunState, StateChange};
use trainconsole_server::ingest::MAX_RUN_NAME_CHARS;
use trainconsole_server::{Hub, IngestAnswer, RunEntry};

use crate::{ServerArgs, StopSignals};

/// Grace period after an abort request before Force kill is offered, when `--grace-secs` is
/// not given.
pub const DEFAULT_GRACE_SECS: f64 = 60.0;
/// Lines of the child's output (non-event stdout lines and stderr) kept for the `exit` event.
pub const OUTPUT_TAIL_LINES: usize = 50;
/// How often events are handed to this process's own console (and its answer read).
pub const LOCAL_POST_INTERVAL: Duration = Duration::from_millis(100);
/// How often events are posted to a console over HTTP (`--server`); with nothing to send
/// this is a poll for an abort request.
pub const REMOTE_POST_INTERVAL: Duration = Duration::from_millis(500);
/// Longest wait before a failed post to a remote console is tried again.
pub const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Time between SIGTERM and SIGKILL of a force kill.
pub const TERM_TO_KILL: Duration = Duration::from_secs(5);
/// Most events in one post.
pub const MAX_POST_EVENTS: usize = 2000;
/// Most events kept while a remote console cannot be reached; beyond it the oldest are
/// dropped (and counted in a warning).
pub const MAX_BUFFERED_EVENTS: usize = 500_000;
/// How long the last events are tried against a remote console after the child exited.
pub const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long this process's console keeps answering after the run has ended and its viewers
/// have been told, so that a script polling `GET /api/runs/{id}` sees the end state.
pub const END_LINGER: Duration = Duration::from_secs(2);
/// How long the child's output pipes may stay open after it exited (a grandchild holding
/// them) before reading stops.
pub const PIPE_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub console: ServerArgs,
    /// Name shown in the console, at most 200 characters (default: the trainer's own
    /// `run_start` name, else the command line, cut to 200 characters).
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds after an abort request before the page offers Force kill.
    #[arg(long, default_value_t = DEFAULT_GRACE_SECS)]
    pub grace_secs: f64,
    /// Report to the console running at URL (e.g. http://127.0.0.1:7437) instead of
    /// serving one; --host, --port and --runs-dir are then not used.
    #[arg(long = "server", value_name = "URL")]
    pub server_url: Option<String>,
    /// The trainer's command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD ARGS")]
    pub command: Vec<String>,
}

/// `trainconsole run`: returns the child's exit status (128 + signal number when a signal
/// ended it), as a shell does.
pub async fn run(args: RunArgs) -> Result<i32> {
    if !(args.grace_secs.is_finite() && args.grace_secs >= 0.0) {
        bail!("--grace-secs must be a non-negative number of seconds, got {}", args.grace_secs);
    }
    let command_line = shell_words(&args.command);
    if let Some(name) = &args.name
        && name.chars().count() > MAX_RUN_NAME_CHARS
    {
        bail!("--name is {} characters long; a run name has at most {MAX_RUN_NAME_CHARS}", name.chars().count());
    }
    let start = RunStart {
        name: args.name.clone().unwrap_or_else(|| shorten(&command_line, MAX_RUN_NAME_CHARS)),
        config: serde_json::json!({ "command": command_line }),
        ..Default::default()
    };
    match args.server_url.clone() {
        Some(url) => run_remote(args, start, url).await,
        None => run_local(args, start).await,
    }
}

/// With a console of this process's own.
async fn run_local(args: RunArgs, start: RunStart) -> Result<i32> {
    let hub = Hub::open(&args.console.runs_dir)?;
    let listener = crate::bind(&args.console).await?;
    let bound = listener.local_addr()?;
    let base_url = trainconsole_server::console_url(bound);
    let (entry, _token) = hub
        .create_external_run(start, trainconsole_protocol::event::unix_time_secs(), Some(args.grace_secs), Some(&base_url))
        .await?;
    let run_id = entry.id().to_string();
    let server = tokio::spawn(trainconsole_server::serve(listener, crate::router(&hub, bound), crate::shutdown_signal(hub.clone())));
    println!("trainconsole: running `{}` as run {run_id}; console at {base_url}/runs/{run_id}", shell_words(&args.command));
    let reporter = Reporter::Local { hub: hub.clone(), entry };
    let page_url = format!("{base_url}/runs/{run_id}");
    let code = supervise(&args, reporter, &run_id, &page_url).await;
    hub.detach_producer(&run_id);
    tokio::time::sleep(END_LINGER).await;
    hub.shut_down();
    if !hub.wait_for_viewers(crate::SHUTDOWN_GRACE).await {
        tracing::debug!("viewers did not close within {:?}", crate::SHUTDOWN_GRACE);
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), server).await;
    code
}

/// Reporting to a running console over HTTP.
async fn run_remote(args: RunArgs, start: RunStart, url: String) -> Result<i32> {
    let base = url.trim_end_matches('/').to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut body = serde_json::to_value(&start)?;
    body["force_kill_grace_secs"] = serde_json::json!(args.grace_secs);
    let (agent_for_create, create_url) = (agent.clone(), format!("{base}/api/runs"));
    let (status, text) = tokio::task::spawn_blocking(move || post_text(&agent_for_create, &create_url, None, None, body.to_string()))
        .await?
        .map_err(|err| anyhow::anyhow!("cannot reach the console at {base}: {err}"))?;
    if status != 201 {
        bail!("the console at {base} refused to create the run ({status}): {}", error_text(&text));
    }
    let created: serde_json::Value = serde_json::from_str(&text).context("the console's answer to POST /api/runs is not JSON")?;
    let (Some(run_id), Some(token)) = (created["id"].as_str(), created["token"].as_str()) else {
        bail!("the console's answer to POST /api/runs has no id and token: {text}");
    };
    let page_url = created["url"].as_str().map_or_else(|| format!("{base}/runs/{run_id}"), str::to_string);
    println!("trainconsole: running `{}` as run {run_id}; console at {page_url}", shell_words(&args.command));
    let reporter = Reporter::Remote(Arc::new(Remote {
        agent,
        base: base.clone(),
        events_url: format!("{base}/api/runs/{run_id}/events"),
        token: token.to_string(),
        key_prefix: format!("{}-{}", std::process::id(), (trainconsole_protocol::event::unix_time_secs() * 1000.0) as u64),
    }));
    supervise(&args, reporter, run_id, &page_url).await
}

/// Where the run's events go: this process's hub, or a console over HTTP.
#[derive(Clone)]
enum Reporter {
    Local { hub: Hub, entry: Arc<RunEntry> },
    Remote(Arc<Remote>),
}

struct Remote {
    agent: ureq::Agent,
    base: String,
    events_url: String,
    token: String,
    /// Idempotency keys are `PREFIX-N`, N counting this process's batches.
    key_prefix: String,
}

/// A batch of events on its way, with the number that names it for idempotency.
struct Batch {
    number: u64,
    events: Vec<Event>,
}

/// Why a post failed.
enum PostError {
    /// Try the same batch again later (console unreachable, 5xx).
    Retry(String),
    /// The console refused the batch; sending it again would not help.
    Refused(String),
}

impl Reporter {
    fn post_interval(&self) -> Duration {
        match self {
            Reporter::Local { .. } => LOCAL_POST_INTERVAL,
            Reporter::Remote(_) => REMOTE_POST_INTERVAL,
        }
    }

    async fn post(self, batch: &Batch) -> Result<IngestAnswer, PostError> {
        match self {
            Reporter::Local { hub, entry } => {
                let (answer, refused) = hub
                    .ingest(&entry, batch.events.clone(), None)
                    .await
                    .map_err(|err| PostError::Refused(format!("{} event(s) were not stored: {err}", batch.events.len())))?;
                if let Some(refused) = refused {
                    let left = batch.events.len() - refused.index;
                    eprintln!("trainconsole: {left} event(s) were not stored: {}", refused.reason);
                }
                Ok(answer)
            }
            Reporter::Remote(remote) => {
                let mut body = String::new();
                for event in &batch.events {
                    body.push_str(&serde_json::to_string(event).map_err(|err| PostError::Refused(err.to_string()))?);
                    body.push('\n');
                }
                let key = format!("{}-{}", remote.key_prefix, batch.number);
                let remote_for_post = remote.clone();
                let result = tokio::task::spawn_blocking(move || {
                    post_text(&remote_for_post.agent, &remote_for_post.events_url, Some(&remote_for_post.token), Some(&key), body)
                })
                .await
                .map_err(|err| PostError::Retry(err.to_string()))?;
                match result {
                    Err(err) => Err(PostError::Retry(format!("cannot reach the console at {}: {err}", remote.base))),
                    Ok((200, text)) => serde_json::from_str(&text).map_err(|err| PostError::Retry(format!("the console's answer is not understood: {err}"))),
                    Ok((status, text)) if status >= 500 || status == 429 => Err(PostError::Retry(format!("the console answered {status}: {}", error_text(&text)))),
                    Ok((status, text)) => {
                        // A 400 or 409 stores the events before the refused one and says how many.
                        let stored = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v["stored"].as_u64()).unwrap_or(0);
                        let left = batch.events.len().saturating_sub(stored as usize);
                        Err(PostError::Refused(format!("{left} event(s) were not stored: the console answered {status}: {}", error_text(&text))))
                    }
                }
            }
        }
    }

    /// Ask the console to abort the run (this terminal's Ctrl-C), as the page's Abort does.
    async fn request_abort(&self, run_id: &str) -> Result<(), String> {
        match self {
            Reporter::Local { hub, .. } => hub.abort(run_id).await.map(|_| ()).map_err(|err| err.to_string()),
            Reporter::Remote(remote) => {
                let (agent, url) = (remote.agent.clone(), format!("{}/api/runs/{run_id}/abort", remote.base));
                match tokio::task::spawn_blocking(move || post_text(&agent, &url, None, None, String::new())).await {
                    Ok(Ok((202, _))) => Ok(()),
                    Ok(Ok((status, text))) => Err(format!("the console answered {status}: {}", error_text(&text))),
                    Ok(Err(err)) => Err(err),
                    Err(err) => Err(err.to_string()),
                }
            }
        }
    }
}

/// POST `body` to `url`; returns the status and the answer's text.
fn post_text(agent: &ureq::Agent, url: &str, token: Option<&str>, key: Option<&str>, body: String) -> Result<(u16, String), String> {
    let mut request = agent.post(url).header("Content-Type", "application/x-ndjson");
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let mut response = request.send(body).map_err(|err| err.to_string())?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Ok((status, text))
}

/// The `error` of a JSON error answer, else the text.
fn error_text(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(300).collect())
}

/// One line of the child's output.
enum Output {
    /// Boxed: an event is large and most lines are text.
    Event(Box<Event>),
    Text { line: String, stderr: bool },
}

/// Start the child, pass its output and events on, carry out aborts and force kills, and
/// report how it ended. Returns the exit code for this process.
async fn supervise(args: &RunArgs, reporter: Reporter, run_id: &str, page_url: &str) -> Result<i32> {
    let (program, rest) = args.command.split_first().context("no command given after --")?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(rest)
        // Its own process group: a signal to the group reaches every process of the trainer
        // (data loader workers too), and the terminal's Ctrl-C reaches only this process.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("TRAINCONSOLE_EVENTS", "stdout")
        .env("TRAINCONSOLE_RUN_ID", run_id)
        .env("TRAINCONSOLE_RUN_URL", page_url);
    if std::env::var_os("PYTHONUNBUFFERED").is_none() {
        // Python buffers a piped stdout; its lines should show as they are written.
        command.env("PYTHONUNBUFFERED", "1");
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            // The run exists already: record why it never trained.
            let message = format!("cannot start `{}`: {err}", shell_words(&args.command));
            let mut state = Supervision::new(None, String::new());
            state.pending.push_back(Event::now(StateChange { state: RunState::Failed, message: message.clone() }));
            flush(&reporter, &mut state, Instant::now() + FINAL_FLUSH_TIMEOUT).await;
            bail!(message);
        }
    };
    let pid = child.id().context("the child exited before its id was read")?;
    let group = rustix::process::Pid::from_raw(pid as i32).context("the child's process id is not valid")?;
    let signal_group = |signal: rustix::process::Signal, name: &str| {
        if let Err(err) = rustix::process::kill_process_group(group, signal) {
            // ESRCH: the group is gone already, which is what was wanted.
            if err != rustix::io::Errno::SRCH {
                eprintln!("trainconsole: cannot send {name} to the trainer (process group {pid}): {err}");
            }
        }
    };

    let (lines_tx, mut lines) = mpsc::channel::<Output>(1024);
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    let readers = [
        tokio::spawn(read_output(stdout, false, lines_tx.clone())),
        tokio::spawn(read_output(stderr, true, lines_tx)),
    ];

    let mut state = Supervision::new(args.name.clone(), args.command.join(" "));
    let mut signals = StopSignals::new().ok();
    let mut tick = tokio::time::interval(reporter.post_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight: Option<JoinHandle<(Batch, Result<IngestAnswer, PostError>)>> = None;
    let mut next_post_at = Instant::now();
    let mut retry_delay = reporter.post_interval();
    let mut exit_status: Option<ExitStatus> = None;
    let mut output_open = true;
    let mut drain_deadline: Option<Instant> = None;
    let mut interrupts = 0;
    let mut term_sent_at: Option<Instant> = None;
    let mut kill_sent = false;

    loop {
        if exit_status.is_some() && (!output_open || drain_deadline.is_some_and(|d| Instant::now() >= d)) {
            break;
        }
        tokio::select! {
            line = lines.recv(), if output_open => match line {
                Some(Output::Event(event)) => state.push_event(*event),
                Some(Output::Text { line, stderr }) => state.pass_through(line, stderr),
                None => output_open = false,
            },
            status = child.wait(), if exit_status.is_none() => {
                exit_status = Some(status.context("waiting for the trainer failed")?);
                drain_deadline = Some(Instant::now() + PIPE_DRAIN_TIMEOUT);
            }
            // (`pending` is never reached: the branch runs only while a post is in flight.)
            done = async {
                match in_flight.as_mut() {
                    Some(post) => post.await,
                    None => std::future::pending().await,
                }
            }, if in_flight.is_some() => {
                in_flight = None;
                let (batch, result) = done.unwrap_or_else(|err| (Batch { number: 0, events: Vec::new() }, Err(PostError::Retry(err.to_string()))));
                match result {
                    Ok(answer) => {
                        retry_delay = reporter.post_interval();
                        state.answered(answer);
                        if state.pending.len() >= MAX_POST_EVENTS {
                            // A trainer printing faster than one batch a tick: keep posting.
                            in_flight = Some(spawn_post(&reporter, state.next_batch()));
                        }
                    }
                    Err(PostError::Retry(reason)) => {
                        state.warn_unreachable(&reason);
                        state.retry = Some(batch);
                        retry_delay = (retry_delay * 2).min(MAX_RETRY_INTERVAL);
                        next_post_at = Instant::now() + retry_delay;
                    }
                    Err(PostError::Refused(reason)) => {
                        eprintln!("trainconsole: {reason}");
                    }
                }
            }
            _ = tick.tick() => {
                if in_flight.is_none() && Instant::now() >= next_post_at {
                    in_flight = Some(spawn_post(&reporter, state.next_batch()));
                }
            }
            signal = async {
                match signals.as_mut() {
                    Some(signals) => signals.next().await,
                    None => std::future::pending().await,
                }
            }, if signals.is_some() => {
                interrupts += 1;
                if interrupts == 1 {
                    eprintln!("\ntrainconsole: {signal}: asking the trainer to stop (SIGINT); send it again to kill it");
                    if let Err(err) = reporter.request_abort(run_id).await {
                        eprintln!("trainconsole: the console did not record the abort: {err}");
                    }
                    state.sigint_sent = true;
                    signal_group(rustix::process::Signal::INT, "SIGINT");
                } else if term_sent_at.is_none() {
                    eprintln!("trainconsole: {signal} again: killing the trainer (SIGTERM, then SIGKILL after {TERM_TO_KILL:?})");
                    term_sent_at = Some(Instant::now());
                    signal_group(rustix::process::Signal::TERM, "SIGTERM");
                }
            }
        }
        if exit_status.is_none() {
            if state.abort_requested && !state.sigint_sent {
                state.sigint_sent = true;
                eprintln!("trainconsole: abort requested from the console: sent SIGINT to the trainer (pid {pid})");
                signal_group(rustix::process::Signal::INT, "SIGINT");
            }
            if state.kill_requested && term_sent_at.is_none() {
                eprintln!("trainconsole: force kill requested from the console: sent SIGTERM to the trainer (SIGKILL in {TERM_TO_KILL:?})");
                term_sent_at = Some(Instant::now());
                signal_group(rustix::process::Signal::TERM, "SIGTERM");
            }
            if let Some(sent) = term_sent_at
                && !kill_sent
                && sent.elapsed() >= TERM_TO_KILL
            {
                kill_sent = true;
                eprintln!("trainconsole: the trainer is still running {TERM_TO_KILL:?} after SIGTERM: sent SIGKILL");
                signal_group(rustix::process::Signal::KILL, "SIGKILL");
            }
        }
    }
    for reader in readers {
        reader.abort();
    }
    let status = exit_status.context("the trainer's exit status is unknown")?;

    // Deliver the trainer's own events, then how it ended.
    let deadline = Instant::now() + FINAL_FLUSH_TIMEOUT;
    if let Some(handle) = in_flight.take() {
        finish_post(&mut state, handle.await).await;
    }
    flush(&reporter, &mut state, deadline).await;
    let exit = state.exit_event(status);
    let description = exit.describe();
    let mut closing = vec![Event::now(exit)];
    if let Some(end) = state.end_state(status, &description) {
        closing.push(Event::now(end));
    }
    state.pending.extend(closing);
    flush(&reporter, &mut state, deadline).await;
    if !state.pending.is_empty() || state.retry.is_some() {
        eprintln!("trainconsole: the last events could not be delivered to the console; the run's end is not recorded");
    }
    eprintln!("trainconsole: the trainer ended ({description})");
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    })
}

/// Post `batch` in a task of its own, so that the child's output is read meanwhile.
fn spawn_post(reporter: &Reporter, batch: Batch) -> JoinHandle<(Batch, Result<IngestAnswer, PostError>)> {
    let reporter = reporter.clone();
    tokio::spawn(async move {
        let result = reporter.post(&batch).await;
        (batch, result)
    })
}

async fn finish_post(state: &mut Supervision, done: Result<(Batch, Result<IngestAnswer, PostError>), tokio::task::JoinError>) {
    match done {
        Ok((_, Ok(answer))) => state.answered(answer),
        Ok((batch, Err(PostError::Retry(_)))) => state.retry = Some(batch),
        Ok((_, Err(PostError::Refused(reason)))) => eprintln!("trainconsole: {reason}"),
        Err(_) => {}
    }
}

/// Post everything pending (and a batch to retry), until done or `deadline`.
async fn flush(reporter: &Reporter, state: &mut Supervision, deadline: Instant) {
    let mut delay = reporter.post_interval();
    while state.retry.is_some() || !state.pending.is_empty() {
        let batch = state.next_batch();
        match reporter.clone().post(&batch).await {
            Ok(answer) => state.answered(answer),
            Err(PostError::Refused(reason)) => eprintln!("trainconsole: {reason}"),
            Err(PostError::Retry(reason)) => {
                state.retry = Some(batch);
                if Instant::now() + delay > deadline {
                    state.warn_unreachable(&reason);
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_INTERVAL);
            }
        }
    }
}

/// What the supervisor knows of the run while the child runs.
struct Supervision {
    /// `--name`: overrides the name in the trainer's own `run_start`.
    name: Option<String>,
    /// The command line, added to the trainer's `run_start` config as `command`.
    command: String,
    pending: VecDeque<Event>,
    /// A batch whose post failed, sent again (with the same number) before anything else.
    retry: Option<Batch>,
    batches: u64,
    dropped: u64,
    tail: VecDeque<String>,
    abort_requested: bool,
    kill_requested: bool,
    sigint_sent: bool,
    /// The run's state in the console's latest answer.
    state: Option<RunState>,
    unreachable_warned: bool,
}

impl Supervision {
    fn new(name: Option<String>, command: String) -> Self {
        Self {
            name,
            command,
            pending: VecDeque::new(),
            retry: None,
            batches: 0,
            dropped: 0,
            tail: VecDeque::new(),
            abort_requested: false,
            kill_requested: false,
            sigint_sent: false,
            state: None,
            unreachable_warned: false,
        }
    }

    fn push_event(&mut self, mut event: Event) {
        if let EventBody::RunStart(start) = &mut event.body {
            if let Some(name) = &self.name {
                start.name = name.clone();
            }
            match &mut start.config {
                serde_json::Value::Object(config) => {
                    config.entry("command").or_insert_with(|| self.command.clone().into());
                }
                serde_json::Value::Null => start.config = serde_json::json!({ "command": self.command }),
                _ => {}
            }
        }
        if self.pending.len() >= MAX_BUFFERED_EVENTS {
            self.pending.pop_front();
            self.dropped += 1;
            if self.dropped == 1 {
                eprintln!("trainconsole: the console has not taken events for a while: dropping the oldest beyond {MAX_BUFFERED_EVENTS}");
            }
        }
        self.pending.push_back(event);
    }

    fn pass_through(&mut self, line: String, stderr: bool) {
        use std::io::Write as _;
        // Best effort: a closed terminal must not stop the trainer.
        if stderr {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        if self.tail.len() == OUTPUT_TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    fn next_batch(&mut self) -> Batch {
        if let Some(batch) = self.retry.take() {
            return batch;
        }
        let take = self.pending.len().min(MAX_POST_EVENTS);
        self.batches += 1;
        Batch { number: self.batches, events: self.pending.drain(..take).collect() }
    }

    fn answered(&mut self, answer: IngestAnswer) {
        if self.unreachable_warned {
            eprintln!("trainconsole: the console is reachable again");
            self.unreachable_warned = false;
        }
        self.abort_requested |= answer.abort_requested;
        self.kill_requested |= answer.kill_requested;
        self.state = Some(answer.state);
    }

    fn warn_unreachable(&mut self, reason: &str) {
        if !self.unreachable_warned {
            eprintln!("trainconsole: {reason}; keeping the events and trying again");
            self.unreachable_warned = true;
        }
    }

    fn exit_event(&self, status: ExitStatus) -> ProcessExit {
        ProcessExit {
            exit_code: status.code(),
            signal: status.signal().map(signal_name),
            output_tail: self.tail.iter().cloned().collect(),
        }
    }

    /// The state to record when the child exited without reporting an end; `None` when it did.
    fn end_state(&self, status: ExitStatus, description: &str) -> Option<StateChange> {
        if self.state.is_some_and(|s| s.is_finished() && s != RunState::Interrupted) {
            return None;
        }
        let (state, message) = if self.abort_requested || self.sigint_sent {
            (RunState::Aborted, format!("the trainer's process ended ({description}) without reporting that it stopped"))
        } else if status.success() {
            (RunState::Completed, format!("the trainer's process ended ({description})"))
        } else {
            (RunState::Failed, format!("the trainer's process ended ({description})"))
        };
        Some(StateChange { state, message })
    }
}

/// Read `pipe` line by line: event lines become events, the others text.
async fn read_output(pipe: impl AsyncRead + Unpin, stderr: bool, lines: mpsc::Sender<Output>) {
    let mut reader = BufReader::new(pipe);
    let mut buffer = Vec::new();
    let mut line_number = 0u64;
    let mut warned = false;
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        line_number += 1;
        let text = String::from_utf8_lossy(&buffer);
        let text = text.trim_end_matches(['\n', '\r']);
        let output = if !stderr && text.trim_start().starts_with('{') {
            let parsed = trainconsole_server::ingest::parse_batch(text);
            let mut events = parsed.events.into_iter();
            match (events.next(), events.next(), parsed.error) {
                (Some(event), None, None) if matches!(event.body, EventBody::Exit(_)) => {
                    // How the process ended is this console's to say, from its exit status.
                    eprintln!(
                        "trainconsole: stdout line {line_number} of the trainer is an `exit` event, which only this console reports (when the process ends); passing it through as text"
                    );
                    Output::Text { line: text.to_string(), stderr }
                }
                (Some(event), None, None) => Output::Event(Box::new(event)),
                (_, _, error) => {
                    if !warned {
                        warned = true;
                        let problem = error.map_or_else(|| "not one event".to_string(), |e| e.problem);
                        eprintln!("trainconsole: stdout line {line_number} of the trainer looks like JSON but is not an event ({problem}); passing such lines through as text");
                    }
                    Output::Text { line: text.to_string(), stderr }
                }
            }
        } else {
            Output::Text { line: text.to_string(), stderr }
        };
        if lines.send(output).await.is_err() {
            return;
        }
    }
}

/// The name of signal `number` (Linux numbering), e.g. `SIGKILL`.
fn signal_name(number: i32) -> String {
    let name = match number {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return format!("signal {number}"),
    };
    name.to_string()
}

/// `text` cut to at most `max_chars` characters, ending in "…" when cut.
fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// The command line as one string, quoting arguments with spaces or quotes.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|word| {
            if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_quoted_for_a_shell() {
        let words = ["python3", "train.py", "--name", "my run", "it's"].map(String::from);
        assert_eq!(shell_words(&words), r#"python3 train.py --name 'my run' 'it'\''s'"#);
    }

    #[test]
    fn end_state_follows_the_handshake() {
        let exited = |code: i32| ExitStatus::from_raw(code << 8);
        let killed = ExitStatus::from_raw(9);
        let mut state = Supervision::new(None, "t".into());
        assert_eq!(state.end_state(exited(0), "exit status 0").map(|s| s.state), Some(RunState::Completed));
        assert_eq!(state.end_state(exited(3), "exit status 3").map(|s| s.state), Some(RunState::Failed));
        assert_eq!(state.exit_event(killed).describe(), "killed by SIGKILL");
        state.abort_requested = true;
        let end = state.end_state(killed, "killed by SIGKILL").unwrap();
        assert_eq!(end.state, RunState::Aborted);
        assert!(end.message.contains("killed by SIGKILL"), "{}", end.message);
        state.state = Some(RunState::Aborted);
        assert!(state.end_state(exited(0), "exit status 0").is_none(), "the trainer said it itself");
    }
}
