//! Time the parts of a training step of a preset: batch, forward, backward, clip, AdamW.
//!
//! ```text
//! cargo run --release -p trainconsole-trainer --example profile_step -- [DATA] [--preset small] [--steps 20]
//! ```
//!
//! Prints the mean milliseconds of each part over `--steps` steps (after 2 warm-up steps) and
//! the resulting tokens/s. Generation (samples) is timed separately per token.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use trainconsole_trainer::{AdamW, AdamWParams, Corpus, Gpt, ParamStore, Split, TrainConfig, clip_grad_norm};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut data = PathBuf::from("../shared/data/tinyshakespeare.txt");
    let mut preset = "small".to_string();
    let mut steps = 20u32;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--preset" => preset = args.next().ok_or("--preset needs a name")?,
            "--steps" => steps = args.next().ok_or("--steps needs a number")?.parse()?,
            _ => data = PathBuf::from(arg),
        }
    }
    let cfg = TrainConfig::preset(&preset)?;
    let corpus = Corpus::from_file(&data, cfg.block_size)?;
    let params = ParamStore::seeded(cfg.seed);
    let model = Gpt::load(params.var_builder(), &cfg)?;
    let vars = params.vars();
    let mut optimizer = AdamW::new(vars.clone(), AdamWParams::from_config(&cfg))?;
    let mut rng = StdRng::seed_from_u64(0);

    let mut parts = [Duration::ZERO; 5];
    for step in 0..steps + 2 {
        let mut t = Instant::now();
        let mut lap = |parts: &mut [Duration; 5], i: usize| {
            if step >= 2 {
                parts[i] += t.elapsed();
            }
            t = Instant::now();
        };
        let (x, y) = corpus.batch(Split::Train, cfg.batch_size, cfg.block_size, &mut rng)?;
        lap(&mut parts, 0);
        let loss = model.loss(&x, &y)?;
        let _ = loss.to_scalar::<f32>()?;
        lap(&mut parts, 1);
        let mut grads = loss.backward()?;
        lap(&mut parts, 2);
        clip_grad_norm(&mut grads, &vars, cfg.grad_clip)?;
        lap(&mut parts, 3);
        optimizer.step(&grads, cfg.learning_rate)?;
        lap(&mut parts, 4);
    }
    let total: Duration = parts.iter().sum();
    for (name, part) in ["batch", "forward", "backward", "clip", "adamw"].iter().zip(parts) {
        println!("{name:>9}: {:8.1} ms/step", part.as_secs_f64() * 1e3 / f64::from(steps));
    }
    let step_ms = total.as_secs_f64() * 1e3 / f64::from(steps);
    println!("    total: {step_ms:8.1} ms/step = {:.0} tokens/s", cfg.tokens_per_step() as f64 / (step_ms / 1e3));

    let started = Instant::now();
    let tokens = model.generate(&[10], 100, 1.0, &mut rng, &|| false)?;
    println!(" generate: {:8.1} ms/token", started.elapsed().as_secs_f64() * 1e3 / tokens.len() as f64);
    Ok(())
}
