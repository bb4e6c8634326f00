//! Train steps of a preset with the training engine and print tokens/s: the Rust half of
//! `bench/run.sh` (which runs the same model in PyTorch side by side).
//!
//! ```text
//! cargo run --release -p trainconsole-trainer --example bench_train -- [DATA] [--preset small] [--steps 50] [--warmup 5] [--threads N] [--composed] [--json]
//! cargo run --release -p trainconsole-trainer --example bench_train -- --peak [--threads N]
//! ```
//!
//! `--peak` measures the machine's fp32 peak instead: independent vector FMAs on every thread
//! (`trainconsole_trainer::peak`, the figure `train` divides MFU by), and the `gemm` crate's
//! 1024×1024×1024 product on the pool; prints GFLOP/s of both.
//!
//! The batches are those of a training run (seeded by the config's seed), the learning rate
//! follows the run's schedule, and every step is forward, backward, clipping and AdamW, as in
//! `train`. `--composed` times the composed candle model instead (the pre-engine path).
//! Prints the mean milliseconds per step and tokens/s over `--steps` steps after `--warmup`
//! steps; with `--json`, one JSON object instead.

use std::path::PathBuf;
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use trainconsole_trainer::{
    AdamW, AdamWParams, Corpus, Gpt, GptEngine, LrSchedule, ParamStore, Split, TrainConfig, clip_grad_norm,
    default_threads,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut data = PathBuf::from("../shared/data/tinyshakespeare.txt");
    let mut preset = "small".to_string();
    let mut steps = 50u64;
    let mut warmup = 5u64;
    let mut threads = default_threads();
    let mut composed = false;
    let mut json = false;
    let mut measure_peak = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--preset" => preset = args.next().ok_or("--preset needs a name")?,
            "--steps" => steps = args.next().ok_or("--steps needs a number")?.parse()?,
            "--warmup" => warmup = args.next().ok_or("--warmup needs a number")?.parse()?,
            "--threads" => threads = args.next().ok_or("--threads needs a number")?.parse()?,
            "--composed" => composed = true,
            "--json" => json = true,
            "--peak" => measure_peak = true,
            _ => data = PathBuf::from(arg),
        }
    }
    if measure_peak {
        return peak(threads);
    }
    let cfg = TrainConfig::preset(&preset)?;
    let corpus = Corpus::from_file(&data, cfg.block_size)?;
    let schedule = LrSchedule::from_config(&cfg);
    let store = ParamStore::seeded(cfg.seed);
    let model = Gpt::load(store.var_builder(), &cfg)?;
    let vars = store.vars();
    let mut engine = GptEngine::from_params(&cfg, &vars, threads)?;
    let mut optimizer = AdamW::new(vars.clone(), AdamWParams::from_config(&cfg))?;

    let mut last_loss = 0.0;
    let mut started = Instant::now();
    for step in 0..warmup + steps {
        if step == warmup {
            started = Instant::now();
        }
        let lr = schedule.lr_at(step);
        let mut rng = StdRng::seed_from_u64(cfg.seed.wrapping_add(step));
        if composed {
            let (x, y) = corpus.batch(Split::Train, cfg.batch_size, cfg.block_size, &mut rng)?;
            let loss = model.loss(&x, &y)?;
            last_loss = f64::from(loss.to_scalar::<f32>()?);
            let mut grads = loss.backward()?;
            clip_grad_norm(&mut grads, &vars, cfg.grad_clip)?;
            optimizer.step(&grads, lr)?;
        } else {
            let (x, y) = corpus.batch_ids(Split::Train, cfg.batch_size, cfg.block_size, &mut rng)?;
            last_loss = engine.forward_backward(&x, &y)?;
            engine.clip_and_update(lr, cfg.grad_clip);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let step_ms = secs * 1e3 / steps as f64;
    let tokens_per_sec = (steps * cfg.tokens_per_step()) as f64 / secs;
    if json {
        println!(
            "{{\"impl\":\"{}\",\"threads\":{threads},\"steps\":{steps},\"step_ms\":{step_ms:.3},\"tokens_per_sec\":{tokens_per_sec:.1},\"last_loss\":{last_loss:.4}}}",
            if composed { "candle-composed" } else { "trainconsole-engine" }
        );
    } else {
        println!("{threads} threads: {step_ms:.1} ms/step, {tokens_per_sec:.0} tokens/s (loss after the last step {last_loss:.3})");
    }
    Ok(())
}

/// Print the measured fp32 peak of `threads` threads: FMA throughput and a large gemm.
fn peak(threads: usize) -> Result<(), Box<dyn std::error::Error>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let fma_flops = trainconsole_trainer::peak::measure_fp32_peak(threads).map_or(0.0, |peak| peak.flops_per_sec);
    let n = 1024;
    let a = vec![1.0f32; n * n];
    let b = vec![0.5f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let mut best = 0f64;
    pool.install(|| {
        for _ in 0..8 {
            let started = Instant::now();
            // SAFETY: a, b and c are n×n row-major buffers.
            unsafe {
                gemm::gemm(
                    n, n, n, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, n as isize, b.as_ptr(), 1, n as isize,
                    0.0, 1.0, false, false, false, gemm::Parallelism::Rayon(threads),
                );
            }
            best = best.max(2.0 * (n * n * n) as f64 / started.elapsed().as_secs_f64());
        }
    });
    println!(
        "{{\"threads\":{threads},\"fma_gflops\":{:.1},\"gemm_gflops\":{:.1},\"simd\":\"{:?}\"}}",
        fma_flops / 1e9,
        best / 1e9,
        trainconsole_trainer::kernels::simd_level()
    );
    Ok(())
}
