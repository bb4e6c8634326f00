//! Time the parts of a training step of a preset on the training engine: batch, forward,
//! backward, clipping + AdamW.
//!
//! ```text
//! cargo run --release -p trainconsole-trainer --example profile_step -- [DATA] [--preset small] [--steps 20] [--threads N]
//! ```
//!
//! Prints the mean milliseconds of each part over `--steps` steps (after 2 warm-up steps) and
//! the resulting tokens/s. The forward is timed on its own (a forward-only pass of the same
//! batch) and subtracted from the forward + backward. Generation (samples) is timed separately
//! per token, on the engine and on the composed candle model.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use trainconsole_trainer::{Corpus, Gpt, GptEngine, ParamStore, Split, TrainConfig, default_threads};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut data = PathBuf::from("../shared/data/tinyshakespeare.txt");
    let mut preset = "small".to_string();
    let mut steps = 20u32;
    let mut threads = default_threads();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--preset" => preset = args.next().ok_or("--preset needs a name")?,
            "--steps" => steps = args.next().ok_or("--steps needs a number")?.parse()?,
            "--threads" => threads = args.next().ok_or("--threads needs a number")?.parse()?,
            _ => data = PathBuf::from(arg),
        }
    }
    let cfg = TrainConfig::preset(&preset)?;
    let corpus = Corpus::from_file(&data, cfg.block_size)?;
    let params = ParamStore::seeded(cfg.seed);
    let model = Gpt::load(params.var_builder(), &cfg)?;
    let mut engine = GptEngine::from_params(&cfg, &params.vars(), threads)?;
    let mut rng = StdRng::seed_from_u64(0);

    // batch, forward, forward + backward, clip + AdamW.
    let mut parts = [Duration::ZERO; 4];
    for step in 0..steps + 2 {
        let mut t = Instant::now();
        let mut lap = |parts: &mut [Duration; 4], i: usize| {
            if step >= 2 {
                parts[i] += t.elapsed();
            }
            t = Instant::now();
        };
        let (x, y) = corpus.batch_ids(Split::Train, cfg.batch_size, cfg.block_size, &mut rng)?;
        lap(&mut parts, 0);
        engine.loss(&x, &y)?;
        lap(&mut parts, 1);
        engine.forward_backward(&x, &y)?;
        lap(&mut parts, 2);
        engine.clip_and_update(cfg.learning_rate, cfg.grad_clip);
        lap(&mut parts, 3);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(steps);
    let forward = ms(parts[1]);
    let backward = ms(parts[2]) - forward;
    println!("{threads} threads");
    println!("    batch: {:8.2} ms/step", ms(parts[0]));
    println!("  forward: {forward:8.2} ms/step");
    println!(" backward: {backward:8.2} ms/step");
    println!("clip+adam: {:8.2} ms/step", ms(parts[3]));
    let step_ms = ms(parts[0]) + ms(parts[2]) + ms(parts[3]);
    println!("    total: {step_ms:8.2} ms/step = {:.0} tokens/s", cfg.tokens_per_step() as f64 / (step_ms / 1e3));

    let started = Instant::now();
    let tokens = engine.generate(&[10], 200, 1.0, &mut rng, &|| false)?;
    println!(" generate: {:8.2} ms/token", started.elapsed().as_secs_f64() * 1e3 / tokens.len() as f64);
    engine.write_params(&params.vars())?;
    let started = Instant::now();
    let tokens = model.generate(&[10], 200, 1.0, &mut rng, &|| false)?;
    println!(" generate: {:8.2} ms/token (composed candle model)", started.elapsed().as_secs_f64() * 1e3 / tokens.len() as f64);
    Ok(())
}
