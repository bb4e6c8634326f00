//! `trainconsole`: train a small GPT and watch it live in the browser; serve past runs.
//!
//! * `trainconsole train` trains (default preset `small` on Tiny Shakespeare), serves the
//!   console while it runs, and exits after writing the final checkpoint.
//! * `trainconsole serve` serves the runs stored in the runs directory.
//! * `trainconsole run -- CMD ARGS…` runs any trainer as a child process and reports the
//!   events it prints to the console (see [`run`]).

mod peak;
mod progress;
mod run;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use trainconsole_protocol::{Event, EventBody, RunState, StateChange};
use trainconsole_server::{AllowedHosts, Hub, Publisher};
use trainconsole_trainer::{AbortHandle, Corpus, EventSink, TrainConfig, TrainOutcome};

/// candle allocates and frees large tensors on every op; glibc's allocator returns them to the
/// kernel and page-faults them back in. mimalloc keeps them. The training step itself now runs
/// on the trainer's engine with buffers allocated once; candle still runs the samples.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Preset trained when `--preset` is not given.
const DEFAULT_PRESET: &str = "small";
/// Port tried when `--port` is not given; if it is taken, a free one is used instead.
const DEFAULT_PORT: u16 = 7437;
/// How long viewers get to receive the last events before the process exits.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(Parser)]
#[command(name = "trainconsole", version, about = "Train a small GPT and watch it live; serve past runs.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a GPT on a text file and serve its console while it runs.
    Train(TrainArgs),
    /// Serve the console for the runs stored in the runs directory.
    Serve(ServerArgs),
    /// Run any trainer (`-- CMD ARGS…`) and watch and abort it from the console: JSON event
    /// lines on its stdout are reported, the rest passes through.
    Run(run::RunArgs),
}

#[derive(Args, Clone)]
struct ServerArgs {
    /// Address to listen on. Only loopback is safe: the console can abort runs.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; 0 takes any free port. Default: 7437, or a free port if it is taken.
    #[arg(long)]
    port: Option<u16>,
    /// Directory of the event store and the runs' checkpoints.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Model and optimizer preset: `small` (the default; about 0.8M parameters) or `tiny`
    /// (for tests). With `--resume`, the checkpoint's settings are used.
    #[arg(long)]
    preset: Option<String>,
    /// UTF-8 text file to train on. Default: Tiny Shakespeare, downloaded once, checked
    /// against its SHA-256 and cached.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Token budget of the run (default 2,000,000).
    #[arg(long)]
    max_tokens: Option<u64>,
    /// Name shown in the console.
    #[arg(long)]
    name: Option<String>,
    /// Continue from a checkpoint directory (its step, token count, weights and optimizer state).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Do not draw the terminal progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Peak FLOP/s of the hardware, for MFU (for example 3e11). Default: measured on the
    /// training threads at start (independent vector FMAs, about 100 ms; see docs/metrics.md).
    #[arg(long, value_parser = peak::parse_flops)]
    peak_flops: Option<f64>,
    /// Threads of the training step (forward, backward, optimizer). Default: the number of
    /// cores. Changes speed only, not the numbers trained (beyond f32 rounding).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TRAINCONSOLE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Train(args) => train(args).await,
            Command::Serve(args) => serve(args).await,
            Command::Run(args) => run::run(args).await,
        }
    });
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            std::process::exit(1);
        }
    }
}

/// `trainconsole train`: returns the process exit code (0 completed or aborted, 1 failed).
async fn train(args: TrainArgs) -> Result<i32> {
    let preset = args.preset.clone().unwrap_or_else(|| DEFAULT_PRESET.to_string());
    let resume_meta = args.resume.as_deref().map(trainconsole_trainer::read_checkpoint_meta).transpose()?;
    let (config, resumed_name) = match (&args.resume, &resume_meta) {
        // A resumed run keeps the checkpoint's model and optimizer settings.
        (Some(checkpoint), Some(meta)) => {
            let config = trainconsole_trainer::resume_config(checkpoint, args.max_tokens)?;
            if let Some(preset) = &args.preset {
                let mut asked = TrainConfig::preset(preset)?;
                asked.max_tokens = config.max_tokens;
                asked.keep_checkpoints = config.keep_checkpoints;
                if asked.n_layer != config.n_layer || asked.n_embd != config.n_embd || asked.block_size != config.block_size {
                    bail!(
                        "--preset {preset} does not match the checkpoint {} (its model has {} layers, width {}, context {}); leave out --preset to resume it",
                        checkpoint.display(),
                        config.n_layer,
                        config.n_embd,
                        config.block_size
                    );
                }
            }
            let base = if meta.run_name.is_empty() { "run".to_string() } else { meta.run_name.clone() };
            (config, Some(format!("{base} (resumed from step {})", meta.step)))
        }
        _ => {
            let mut config = TrainConfig::preset(&preset)?;
            if let Some(max_tokens) = args.max_tokens {
                config.max_tokens = max_tokens;
            }
            (config, None)
        }
    };
    config.validate()?;
    // The text: as given; on resume, the checkpoint's own (checked by its sha256); else Tiny
    // Shakespeare.
    let recorded_data = resume_meta.and_then(|meta| meta.data).map(|data| PathBuf::from(data.path));
    let data_path = match (&args.data, recorded_data) {
        (Some(path), _) => path.clone(),
        (None, Some(recorded)) => recorded,
        (None, None) => tokio::task::spawn_blocking(|| trainconsole_trainer::tinyshakespeare_path(None)).await??,
    };
    let corpus = Corpus::from_file(&data_path, config.block_size)?;

    let hub = Hub::open(&args.server.runs_dir)?;
    let listener = bind(&args.server).await?;
    let bound = listener.local_addr()?;
    let base_url = trainconsole_server::console_url(bound);

    let abort = AbortHandle::new();
    let abort_for_console = abort.clone();
    let name = args
        .name
        .clone()
        .or(resumed_name)
        .unwrap_or_else(|| format!("{preset} on {}", file_label(&data_path)));
    let run = hub.create_run(&name, &base_url, Box::new(move || abort_for_console.request()))?;
    let run_id = run.id().to_string();
    let run_dir = args.server.runs_dir.join(&run_id);

    let server = tokio::spawn(trainconsole_server::serve(listener, router(&hub, bound), shutdown_signal(hub.clone())));
    println!("trainconsole: training run {run_id} ({name}); console at {base_url}/runs/{run_id}");

    let progress = (!args.no_progress).then(|| progress::spawn(run.clone()));
    spawn_ctrl_c_handler(hub.clone(), run_id.clone());

    let publisher = hub.publisher(&run_id);
    let resume = args.resume.clone();
    let threads = args.threads;
    let peak_flops = args.peak_flops;
    let trainer = tokio::task::spawn_blocking(move || {
        let options = match threads {
            Some(threads) => trainconsole_trainer::TrainOptions { threads: usize::from(threads) },
            None => trainconsole_trainer::TrainOptions::default(),
        };
        // Measured on the training threads before they train (about 100 ms).
        let peak = peak_flops.map_or_else(|| peak::measured(options.threads), peak::given);
        let mut sink = HubSink { publisher, peak };
        let outcome = trainconsole_trainer::train_with(
            &config,
            &corpus,
            &run_dir,
            resume.as_deref(),
            &name,
            &abort,
            &mut sink,
            &options,
        );
        if let Err(err) = &outcome {
            sink.publisher.publish(Event::now(StateChange { state: RunState::Failed, message: err.to_string() }));
        }
        let flushed = sink.publisher.flush(Duration::from_secs(30));
        (outcome, flushed)
    });
    let (outcome, flushed) = trainer.await.context("the training thread panicked")?;
    hub.detach_producer(&run_id);
    if let Some(progress) = progress {
        progress.finish().await;
    }
    if let Err(err) = flushed {
        eprintln!("warning: not every event of run {run_id} could be stored: {err}");
    }

    let code = match outcome {
        Ok(outcome) => {
            println!("{}", summary_line(&run_id, &outcome, &run.summary()));
            0
        }
        Err(err) => {
            eprintln!("trainconsole: run {run_id} failed: {err}");
            1
        }
    };
    // Viewers get the last events and a `bye` before the process exits.
    hub.shut_down();
    if !hub.wait_for_viewers(SHUTDOWN_GRACE).await {
        tracing::debug!("viewers did not close within {SHUTDOWN_GRACE:?}");
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), server).await;
    Ok(code)
}

/// `trainconsole serve`: serves until Ctrl-C. A runs directory that does not exist yet is
/// created (trainers report to the console through `POST /api/runs`); a path that is not a
/// directory, or one that cannot be created, is an error naming it.
async fn serve(args: ServerArgs) -> Result<i32> {
    let created = !args.runs_dir.exists();
    let hub = Hub::open(&args.runs_dir)?;
    let runs = hub.list()?.len();
    let listener = bind(&args).await?;
    let bound = listener.local_addr()?;
    let base_url = trainconsole_server::console_url(bound);
    let from = if created { format!("the new runs directory {}", args.runs_dir.display()) } else { args.runs_dir.display().to_string() };
    println!("trainconsole: serving {runs} run(s) from {from} at {base_url}/ (Ctrl-C to stop)");
    let hub_for_signal = hub.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            hub_for_signal.shut_down();
        }
    });
    trainconsole_server::serve(listener, router(&hub, bound), shutdown_signal(hub)).await?;
    Ok(0)
}

/// Bind the requested port, or the default one (falling back to a free port when taken).
async fn bind(args: &ServerArgs) -> Result<TcpListener> {
    match args.port {
        Some(port) => Ok(trainconsole_server::bind(&args.host, port).await?),
        None => match trainconsole_server::bind(&args.host, DEFAULT_PORT).await {
            Ok(listener) => Ok(listener),
            Err(_) => Ok(trainconsole_server::bind(&args.host, 0).await?),
        },
    }
}

/// The console's router for a server bound to `bound`: loopback names only when bound to
/// loopback (a defence against DNS rebinding); any name otherwise, with a warning.
fn router(hub: &Hub, bound: std::net::SocketAddr) -> trainconsole_server::Router {
    let hosts = AllowedHosts::for_bind_address(bound);
    if hosts == AllowedHosts::Any {
        eprintln!(
            "warning: listening on {bound}, which is not loopback: anyone who can reach it can watch and abort runs"
        );
    }
    trainconsole_server::router_for_hosts(hub.clone(), assets::ASSETS, hosts)
}

async fn shutdown_signal(hub: Hub) {
    let mut signal = hub.shutdown_signal();
    while !*signal.borrow() {
        if signal.changed().await.is_err() {
            break;
        }
    }
}

/// First Ctrl-C (or SIGTERM, SIGHUP): abort cleanly, keeping the checkpoint, as the page's
/// Abort does. A second one: exit at once.
fn spawn_ctrl_c_handler(hub: Hub, run_id: String) {
    tokio::spawn(async move {
        let Ok(mut signals) = StopSignals::new() else {
            eprintln!("trainconsole: cannot listen for Ctrl-C; abort from the console page");
            return;
        };
        let signal = signals.next().await;
        eprintln!("\ntrainconsole: {signal}: stopping after this step and saving a checkpoint (send it again to quit at once)");
        if let Err(err) = hub.abort(&run_id).await {
            eprintln!("trainconsole: {err}");
        }
        let signal = signals.next().await;
        eprintln!("trainconsole: {signal} again: quitting now, without waiting for the final checkpoint");
        std::process::exit(130);
    });
}

/// The signals that ask `train` to stop: SIGINT (Ctrl-C), SIGTERM (`kill`, `timeout`), SIGHUP
/// (the terminal closed).
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Wait for the next one; returns its name.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message
/// before it already contains (our error types quote their source).
fn error_chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

/// Hands the trainer's events to the hub without blocking, adding this machine's peak FLOP/s
/// to `run_start` (the trainer does not know the hardware).
struct HubSink {
    publisher: Publisher,
    peak: peak::Peak,
}

impl EventSink for HubSink {
    fn emit(&mut self, mut event: Event) {
        if let EventBody::RunStart(start) = &mut event.body
            && start.peak_flops_per_sec.is_none()
        {
            start.peak_flops_per_sec = Some(self.peak.flops_per_sec);
            start.peak_flops_source = Some(self.peak.source.clone());
        }
        self.publisher.publish(event);
    }
}

fn file_label(path: &std::path::Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

/// The one-line summary printed when a run ends.
fn summary_line(run_id: &str, outcome: &TrainOutcome, summary: &trainconsole_protocol::RunSummary) -> String {
    // Tokens of this session (a resumed run starts from the checkpoint's count).
    let session_tokens = outcome.tokens.saturating_sub(summary.start_tokens);
    let wall_rate = if outcome.elapsed_secs > 0.0 { session_tokens as f64 / outcome.elapsed_secs } else { 0.0 };
    let mut line = format!(
        "trainconsole: run {run_id} {} at step {}: {} tokens; this session {} tokens in {} ({} tokens/s overall, {} tokens/s while stepping)",
        outcome.state,
        outcome.step,
        progress::group_thousands(outcome.tokens),
        progress::group_thousands(session_tokens),
        progress::format_duration(outcome.elapsed_secs),
        progress::group_thousands(wall_rate.round() as u64),
        progress::group_thousands(outcome.tokens_per_sec.round() as u64),
    );
    if let Some(val_loss) = outcome.val_loss.or(summary.val_loss) {
        line += &format!(", val loss {val_loss:.4}");
    }
    line += &format!("; checkpoint {}", outcome.checkpoint.display());
    line
}
