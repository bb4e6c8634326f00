//! Train a preset on a text file and print the figures that matter.
//!
//! ```text
//! cargo run --release -p trainconsole-trainer --example train_small -- [DATA] [--preset small] [--max-tokens N] [--run-dir DIR]
//! ```
//!
//! `DATA` defaults to Tiny Shakespeare from the cache (downloaded if missing); `--run-dir`
//! defaults to a fresh temporary directory. Prints every eval and sample, a step line every
//! 50 steps, and finally the validation loss, tokens/s and wall time.

use std::path::PathBuf;
use std::time::Instant;

use trainconsole_protocol::{Event, EventBody};
use trainconsole_trainer::{AbortHandle, Corpus, TrainConfig, tinyshakespeare_path, train};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut data = None;
    let mut preset = "small".to_string();
    let mut max_tokens = None;
    let mut run_dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--preset" => preset = args.next().ok_or("--preset needs a name")?,
            "--max-tokens" => max_tokens = Some(args.next().ok_or("--max-tokens needs a number")?.parse::<u64>()?),
            "--run-dir" => run_dir = Some(PathBuf::from(args.next().ok_or("--run-dir needs a path")?)),
            _ => data = Some(PathBuf::from(arg)),
        }
    }
    let mut cfg = TrainConfig::preset(&preset)?;
    if let Some(max_tokens) = max_tokens {
        cfg.max_tokens = max_tokens;
    }
    let data = match data {
        Some(path) => path,
        None => tinyshakespeare_path(None)?,
    };
    let corpus = Corpus::from_file(&data, cfg.block_size)?;
    let run_dir = match run_dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("train_small-{}", std::process::id())),
    };
    println!(
        "preset {preset}: {} steps of {} tokens, data {}, run dir {}",
        cfg.total_steps(),
        cfg.tokens_per_step(),
        data.display(),
        run_dir.display()
    );

    let started = Instant::now();
    let mut print = |event: Event| match event.body {
        EventBody::Step(s) if s.step % 50 == 0 || s.step == 1 => println!(
            "step {:5}  tokens {:8}  loss {:.4}  lr {:.2e}  grad_norm {:.3}  {:.0} ms/step  ({:.0} s)",
            s.step,
            s.tokens,
            s.loss,
            s.lr.unwrap_or(f64::NAN),
            s.grad_norm.unwrap_or(f64::NAN),
            s.step_time_ms.unwrap_or(f64::NAN),
            started.elapsed().as_secs_f64()
        ),
        EventBody::Eval(e) => println!("eval  step {:5}  val_loss {:.4}", e.step, e.val_loss),
        EventBody::Sample(s) => println!("sample step {}:\n{}\n---", s.step, s.text),
        EventBody::Checkpoint(c) => println!("checkpoint step {}: {}", c.step, c.path),
        _ => {}
    };
    let outcome =
        train(&cfg, &corpus, &run_dir, None, &format!("train_small {preset}"), &AbortHandle::new(), &mut print)?;
    println!(
        "final: state {}  step {}  tokens {}  val_loss {}  train tokens/s {:.0}  wall {:.1} s ({:.0} tokens/s incl. eval)",
        outcome.state,
        outcome.step,
        outcome.tokens,
        outcome.val_loss.map_or("none".to_string(), |l| format!("{l:.4}")),
        outcome.tokens_per_sec,
        outcome.elapsed_secs,
        outcome.tokens as f64 / outcome.elapsed_secs
    );
    Ok(())
}
