//! Wire types of trainconsole, shared by every producer (our own trainer, external
//! trainers) and every viewer (the web page, the terminal bar). No I/O lives here.
//!
//! * [`Event`]: what a producer reports, one JSON object per event, tagged by `kind`.
//! * [`StoredEvent`]: an event with the per-run sequence number `seq` the store gave it.
//! * [`RunSummary`]: the run's headline figures (tokens, tokens/s, ETA, state, …), folded
//!   from its events by [`RunSummary::apply`]; the server, the page and the terminal bar
//!   all read this one computation so that they agree.
//!
//! Floats that may be NaN or ±Infinity (losses, rates) travel as JSON numbers when finite
//! and as the strings `"NaN"`, `"Infinity"` and `"-Infinity"` otherwise; see [`float`].

pub mod event;
pub mod float;
pub mod summary;

pub use event::{
    Checkpoint, Eval, Event, EventBody, ProcessExit, RunStart, RunState, Sample, StateChange, Step, StoredEvent,
};
pub use summary::{RunSummary, ThroughputMeter};
