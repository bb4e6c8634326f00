//! The terminal progress bar: tokens, loss, tokens/s and ETA, read from the same run
//! summary the page shows (so both agree).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use trainconsole_protocol::{EtaStatus, RunState, RunSummary};
use trainconsole_server::RunEntry;

/// Without a terminal, a plain progress line is printed this often.
const PLAIN_LINE_INTERVAL: Duration = Duration::from_secs(30);

/// A running progress display; [`Progress::finish`] draws the last state and stops it.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
    bar: ProgressBar,
    run: Arc<RunEntry>,
}

/// Start drawing the progress of `run` on stderr.
pub fn spawn(run: Arc<RunEntry>) -> Progress {
    let terminal = std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(Some(1), if terminal { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() });
    let style = ProgressStyle::with_template("{bar:28.cyan/blue} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
    let mut events = run.subscribe();
    let (task_bar, task_run) = (bar.clone(), run.clone());
    let task = tokio::spawn(async move {
        let mut last_plain = Instant::now();
        loop {
            match events.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
            let summary = task_run.summary();
            draw(&task_bar, &summary);
            if !terminal && last_plain.elapsed() >= PLAIN_LINE_INTERVAL {
                eprintln!("{}", status_text(&summary));
                last_plain = Instant::now();
            }
        }
    });
    Progress { task, bar, run }
}

impl Progress {
    /// Draw the final state and stop.
    pub async fn finish(self) {
        // Give the writer a moment to fold the last events in.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.task.abort();
        draw(&self.bar, &self.run.summary());
        self.bar.abandon();
    }
}

fn draw(bar: &ProgressBar, summary: &RunSummary) {
    let total = summary.total_tokens.unwrap_or(summary.tokens).max(1);
    bar.set_length(total);
    bar.set_position(summary.tokens.min(total));
    bar.set_message(status_text(summary));
}

/// One line of status, e.g. `204,800/2,000,000 tokens (10.2%) · step 100/977 · loss 2.3142 ·
/// 2,510 tok/s · MFU 4.8% · ETA 11m 55s (11m 02s–12m 48s)`.
pub fn status_text(summary: &RunSummary) -> String {
    let mut parts = Vec::new();
    let tokens = match (summary.total_tokens, summary.progress) {
        (Some(total), Some(progress)) => {
            format!("{}/{} tokens ({})", group_thousands(summary.tokens), group_thousands(total), format_percent(progress))
        }
        _ => format!("{} tokens", group_thousands(summary.tokens)),
    };
    parts.push(tokens);
    parts.push(match summary.total_steps {
        Some(total) => format!("step {}/{}", summary.step, total),
        None => format!("step {}", summary.step),
    });
    if let Some(loss) = summary.loss {
        parts.push(format!("loss {loss:.4}"));
    }
    if let Some(val_loss) = summary.val_loss {
        parts.push(format!("val {val_loss:.4}"));
    }
    parts.push(match summary.tokens_per_sec {
        Some(rate) => format!("{} tok/s", group_thousands(rate.round() as u64)),
        None => "— tok/s".to_string(),
    });
    if let Some(mfu) = summary.mfu {
        parts.push(format_mfu(mfu));
    }
    if let Some(eta) = eta_text(summary) {
        parts.push(eta);
    }
    if summary.state.is_finished() {
        parts.push(summary.state.to_string());
    } else if summary.state == RunState::Stopping {
        parts.push("stopping…".to_string());
    }
    parts.join(" · ")
}

/// The ETA as the page shows it: `"ETA estimating…"`, `"ETA 2m 52s (2m 37s–3m 07s)"` (the
/// 10th to 90th percentile in brackets), `"paused, 40s of training left"`, `"finishing"`, or
/// nothing (no budget, or the run is stopping or has ended).
pub fn eta_text(summary: &RunSummary) -> Option<String> {
    let eta = summary.eta_secs.filter(|e| e.is_finite() && *e >= 0.0);
    match summary.eta_status {
        EtaStatus::None => None,
        EtaStatus::Estimating => Some("ETA estimating…".to_string()),
        EtaStatus::Finishing => Some("finishing".to_string()),
        EtaStatus::Paused => Some(match eta {
            Some(eta) => format!("paused, {} of training left", format_eta(eta)),
            None => "paused".to_string(),
        }),
        EtaStatus::Estimated => Some(match (eta, summary.eta_low_secs, summary.eta_high_secs) {
            (Some(eta), Some(low), Some(high)) => format!("ETA {} ({}–{})", format_eta(eta), format_eta(low), format_eta(high)),
            (Some(eta), _, _) => format!("ETA {}", format_eta(eta)),
            (None, _, _) => "ETA estimating…".to_string(),
        }),
    }
}

/// Seconds left, rounded up (as the page does): `"3m 05s"`.
pub fn format_eta(secs: f64) -> String {
    format_duration(secs.ceil())
}

/// MFU as a percent with one decimal; above 100% it says the peak must be wrong.
pub fn format_mfu(mfu: f64) -> String {
    if mfu > 1.0 {
        format!("MFU {:.1}% (above 100%: the peak is set too low, see --peak-flops)", mfu * 100.0)
    } else {
        format!("MFU {:.1}%", mfu * 100.0)
    }
}

/// A fraction in `[0, 1]` as a percent, rounded down as the page does (so 100% means done):
/// two decimals below 1%, one above (`0.0042` → `"0.42%"`, `0.1024` → `"10.2%"`).
pub fn format_percent(fraction: f64) -> String {
    let clamped = fraction.clamp(0.0, 1.0);
    let decimals = if clamped < 0.01 { 2 } else { 1 };
    let scale = 10f64.powi(decimals);
    let units = (clamped * 100.0 * scale + 1e-9).floor();
    format!("{:.*}%", decimals as usize, units / scale)
}

/// `1234567` → `"1,234,567"`.
pub fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as `"45s"`, `"3m 05s"` or `"1h 02m 03s"`; `"—"` for a non-finite or negative value.
pub fn format_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "—".to_string();
    }
    let total = secs.round() as u64;
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(2_000_000), "2,000,000");
        assert_eq!(format_duration(45.4), "45s");
        assert_eq!(format_duration(185.0), "3m 05s");
        assert_eq!(format_duration(3723.0), "1h 02m 03s");
        assert_eq!(format_duration(f64::NAN), "—");
        assert_eq!(format_duration(-1.0), "—");
        assert_eq!(format_percent(0.0042), "0.42%");
        assert_eq!(format_percent(0.1024), "10.2%");
        assert_eq!(format_percent(0.9999), "99.9%");
        assert_eq!(format_percent(1.7), "100.0%");
    }

    #[test]
    fn status_line_shows_the_summary() {
        let summary = RunSummary {
            tokens: 204_800,
            total_tokens: Some(2_000_000),
            progress: Some(0.1024),
            step: 100,
            total_steps: Some(977),
            loss: Some(2.31424),
            tokens_per_sec: Some(2510.4),
            mfu: Some(0.0483),
            eta_status: EtaStatus::Estimated,
            eta_secs: Some(714.2),
            eta_low_secs: Some(661.5),
            eta_high_secs: Some(768.0),
            ..RunSummary::default()
        };
        assert_eq!(
            status_text(&summary),
            "204,800/2,000,000 tokens (10.2%) · step 100/977 · loss 2.3142 · 2,510 tok/s · MFU 4.8% · ETA 11m 55s (11m 02s–12m 48s)"
        );
    }

    #[test]
    fn eta_through_a_run() {
        let mut summary = RunSummary { eta_status: EtaStatus::Estimating, ..RunSummary::default() };
        assert_eq!(eta_text(&summary).as_deref(), Some("ETA estimating…"));
        summary.eta_status = EtaStatus::Paused;
        summary.eta_secs = Some(39.2);
        assert_eq!(eta_text(&summary).as_deref(), Some("paused, 40s of training left"));
        summary.eta_status = EtaStatus::Finishing;
        summary.eta_secs = Some(0.0);
        assert_eq!(eta_text(&summary).as_deref(), Some("finishing"));
        summary.eta_status = EtaStatus::None;
        summary.state = RunState::Completed;
        assert_eq!(eta_text(&summary), None);
        assert!(status_text(&summary).ends_with(" · completed"), "{}", status_text(&summary));
    }

    #[test]
    fn mfu_above_100_percent_warns() {
        assert_eq!(format_mfu(0.123), "MFU 12.3%");
        assert_eq!(format_mfu(1.5), "MFU 150.0% (above 100%: the peak is set too low, see --peak-flops)");
    }
}
