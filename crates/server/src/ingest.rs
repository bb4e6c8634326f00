//! Reading a batch of events posted by an external trainer (`POST /api/runs/{id}/events`).
//!
//! A body is either JSON lines (one event object per line; blank lines are skipped) or one
//! JSON array of event objects, in the wire format of [`trainconsole_protocol::Event`].
//! Python's `json.dumps` writes non-finite floats as bare `NaN`, `Infinity` and `-Infinity`,
//! which JSON does not have; outside strings they are read as the wire format's `"NaN"`,
//! `"Infinity"` and `"-Infinity"`, so the values are kept as they are.
//!
//! Parsing stops at the first bad event: the events before it are returned with an error
//! that names where it is (line, and for a JSON array the element's 0-based index; the
//! column for a JSON syntax error) and what is wrong, so the caller can store the good ones.
//! This holds for a syntax error inside an array too: the array is read element by element.

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use trainconsole_protocol::{Event, EventBody, RunStart, RunState};

/// Largest body `POST /api/runs/{id}/events` takes, in bytes (4 MiB, about 25,000 step
/// events); a larger one is answered 413 and nothing of it is stored.
pub const MAX_INGEST_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Largest integer a count (`step`, `tokens`, `total_tokens`, …) may have: 2^53 − 1, the
/// largest integer a JavaScript number (the page's) holds exactly. A larger one is refused
/// rather than shown rounded.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Longest run name (`run_start.name`, `POST /api/runs`'s `name`), in characters.
pub const MAX_RUN_NAME_CHARS: usize = 200;

/// Largest run configuration (`run_start.config`), in bytes of compact JSON (64 KiB).
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// Where an event starts in a posted body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line of the body.
    pub line: usize,
    /// 0-based index of the element, for a body that is a JSON array.
    pub element: Option<usize>,
}

/// The events read from a body, and the error that stopped the reading, if any.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    /// Every valid event before the first bad one, in body order.
    pub events: Vec<Event>,
    /// Where each of `events` starts in the body (same length and order).
    pub positions: Vec<Position>,
    /// The first bad event; `None` when the whole body was read.
    pub error: Option<LineError>,
}

/// What is wrong with one event of a posted body, and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    /// 1-based line of the body where the problem is (where the bad event starts, or for a
    /// JSON syntax error, where the syntax breaks).
    pub line: usize,
    /// 1-based column (in bytes) of a JSON syntax error; `None` for an event that is valid
    /// JSON but not a valid event.
    pub column: Option<usize>,
    /// 0-based index of the bad element, for a body that is a JSON array.
    pub element: Option<usize>,
    /// What is wrong, for people, e.g. ``a step event needs `loss` ``.
    pub problem: String,
}

impl LineError {
    /// An error at `position` (no column).
    pub fn at(position: Position, problem: impl Into<String>) -> Self {
        Self { line: position.line, column: None, element: position.element, problem: problem.into() }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(column) = self.column {
            write!(f, ", column {column}")?;
        }
        if let Some(element) = self.element {
            write!(f, " (array element {element})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Read a posted body (JSON lines or a JSON array) into events.
pub fn parse_batch(body: &str) -> ParsedBatch {
    let quoted = Quoted::new(body);
    let text = quoted.text.as_ref();
    if text.trim_start().starts_with('[') { parse_array(&quoted) } else { parse_lines(&quoted) }
}

fn parse_lines(quoted: &Quoted<'_>) -> ParsedBatch {
    let mut batch = ParsedBatch::default();
    let mut line_start = 0;
    for (index, line) in quoted.text.split('\n').enumerate() {
        let start = line_start;
        line_start += line.len() + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let position = Position { line: index + 1, element: None };
        match parse_event(trimmed) {
            Ok(event) => {
                batch.events.push(event);
                batch.positions.push(position);
            }
            Err(problem) => {
                let mut error = LineError::at(position, problem.message);
                if let Some(column) = problem.column {
                    // The column within the trimmed line, as a column of the body's line.
                    let lead = line.len() - line.trim_start().len();
                    error.column = Some(quoted.original_column(start, start + lead + column - 1));
                }
                batch.error = Some(error);
                break;
            }
        }
    }
    batch
}

/// Collects the elements of a JSON array as raw JSON, one by one, so that the elements before
/// a syntax error are kept.
struct Elements<'a, 'de>(&'a mut Vec<&'de RawValue>);

impl<'de> DeserializeSeed<'de> for Elements<'_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of event objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(element) = seq.next_element::<&'de RawValue>()? {
            self.0.push(element);
        }
        Ok(())
    }
}

fn parse_array(quoted: &Quoted<'_>) -> ParsedBatch {
    let text = quoted.text.as_ref();
    let mut batch = ParsedBatch::default();
    let mut elements: Vec<&RawValue> = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let read = Elements(&mut elements).deserialize(&mut deserializer);
    let array_read = read.is_ok();
    let syntax = read.and_then(|()| deserializer.end()).err();
    for (index, element) in elements.iter().enumerate() {
        // `element` borrows from `text`: its offset gives the line it starts on.
        let offset = (element.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize).min(text.len());
        let line = text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        let position = Position { line, element: Some(index) };
        match parse_event(element.get()) {
            Ok(event) => {
                batch.events.push(event);
                batch.positions.push(position);
            }
            Err(problem) => {
                batch.error = Some(LineError::at(position, problem.message));
                return batch;
            }
        }
    }
    if let Some(err) = syntax {
        let line = err.line().max(1);
        let column = (err.column() > 0).then(|| quoted.original_column_at(line, err.column()));
        // After the closing bracket nothing is an element any more.
        let element = (!array_read).then_some(elements.len());
        let message = if array_read { format!("{} after the array", json_problem(&err)) } else { json_problem(&err) };
        batch.error = Some(LineError { line, column, element, problem: message });
    }
    batch
}

/// A run to create, as posted to `POST /api/runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// Its `run_start` event.
    pub start: RunStart,
    /// `time` of that event: the body's `time`, else this machine's clock now.
    pub time: f64,
    /// Grace period before a force kill, for a console that started the trainer's process.
    pub force_kill_grace_secs: Option<f64>,
}

/// Read the body of `POST /api/runs`: a JSON object with the fields of a `run_start` event
/// (`name`, `config`, `total_tokens`, `total_steps`, `tokens_per_step`, `grad_accum`,
/// `world_size`, …), optionally `time` and `force_kill_grace_secs`. An empty body is a run
/// with no name and no budget. The error names the field that is wrong (a name longer than
/// [`MAX_RUN_NAME_CHARS`], a config larger than [`MAX_CONFIG_BYTES`], …).
pub fn parse_new_run(body: &str) -> Result<NewRun, String> {
    let body = if body.trim().is_empty() { "{}" } else { body };
    let text = quote_bare_non_finite(body);
    let mut value: Value = serde_json::from_str(&text).map_err(|err| syntax_problem(&err).with_column())?;
    let Some(object) = value.as_object_mut() else {
        return Err(format!("the body must be a JSON object describing the run, got {}", short(&value)));
    };
    if let Some(key) = duplicate_key(&text) {
        return Err(duplicate_key_problem(&key));
    }
    let grace = match object.remove("force_kill_grace_secs") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_f64().is_some_and(|v| v.is_finite() && v >= 0.0) => n.as_f64(),
        Some(other) => return Err(format!("field `force_kill_grace_secs` must be a non-negative number of seconds, got {}", short(&other))),
    };
    if let Some(kind) = object.get("kind").filter(|kind| kind.as_str() != Some("run_start")) {
        return Err(format!("field `kind` must be \"run_start\" or left out, got {}", short(kind)));
    }
    object.insert("kind".into(), Value::from("run_start"));
    if !object.contains_key("time") {
        object.insert("time".into(), Value::from(trainconsole_protocol::event::unix_time_secs()));
    }
    let event = parse_event(&value.to_string()).map_err(|problem| problem.message)?;
    match event.body {
        EventBody::RunStart(start) => Ok(NewRun { start, time: event.time, force_kill_grace_secs: grace }),
        _ => Err("the body must describe a run".into()),
    }
}

/// What is wrong with one event's JSON text.
#[derive(Debug)]
struct Problem {
    message: String,
    /// 1-based column in the event's text of a JSON syntax error.
    column: Option<usize>,
}

impl Problem {
    /// The message with the column in words, for a caller that names no position itself.
    fn with_column(self) -> String {
        match self.column {
            Some(column) => format!("{} (column {column})", self.message),
            None => self.message,
        }
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Self {
        Self { message, column: None }
    }
}

/// One event from its JSON text (bare non-finite numbers already quoted), checked against
/// the limits serde does not know: a non-negative `time`, counts up to
/// [`MAX_SAFE_INTEGER`], each key once, and the run name and config limits.
fn parse_event(json: &str) -> Result<Event, Problem> {
    let event: Event = match serde_json::from_str(json) {
        Ok(event) => event,
        Err(err) if err.is_data() => {
            // serde's message for a field of an internally tagged enum does not name the
            // field; look at the object to say which one is wrong.
            let value: Value = serde_json::from_str(json).map_err(|err| syntax_problem(&err))?;
            let message = duplicate_key(json)
                .map(|key| duplicate_key_problem(&key))
                .or_else(|| describe_bad_event(&value))
                .unwrap_or_else(|| json_problem(&err));
            return Err(message.into());
        }
        Err(err) => return Err(syntax_problem(&err)),
    };
    if let Some(key) = duplicate_key(json) {
        return Err(duplicate_key_problem(&key).into());
    }
    check_event(&event)?;
    Ok(event)
}

/// The limits of an event that its types do not carry.
fn check_event(event: &Event) -> Result<(), String> {
    if !(event.time.is_finite() && event.time >= 0.0) {
        return Err(format!("field `time` must be a non-negative number of seconds since the Unix epoch, got {}", event.time));
    }
    let counts: Vec<(&str, Option<u64>)> = match &event.body {
        EventBody::RunStart(start) => {
            let chars = start.name.chars().count();
            if chars > MAX_RUN_NAME_CHARS {
                return Err(format!("field `name` is {chars} characters long; a run name has at most {MAX_RUN_NAME_CHARS}"));
            }
            let config_bytes = serde_json::to_string(&start.config).map_or(0, |text| text.len());
            if config_bytes > MAX_CONFIG_BYTES {
                return Err(format!(
                    "field `config` is {config_bytes} bytes of JSON; a run's config has at most {MAX_CONFIG_BYTES} ({} KiB)",
                    MAX_CONFIG_BYTES / 1024
                ));
            }
            let model = start.model.as_ref();
            vec![
                ("total_tokens", start.total_tokens),
                ("total_steps", start.total_steps),
                ("tokens_per_step", start.tokens_per_step),
                ("start_step", Some(start.start_step)),
                ("start_tokens", Some(start.start_tokens)),
                ("model.params", model.and_then(|m| m.params)),
                ("model.n_layer", model.and_then(|m| m.n_layer)),
                ("model.d_model", model.and_then(|m| m.d_model)),
                ("model.seq_len", model.and_then(|m| m.seq_len)),
            ]
        }
        EventBody::Step(step) => vec![("step", Some(step.step)), ("tokens", Some(step.tokens))],
        EventBody::Eval(eval) => vec![("step", Some(eval.step))],
        EventBody::Sample(sample) => vec![("step", Some(sample.step))],
        EventBody::Checkpoint(checkpoint) => vec![("step", Some(checkpoint.step)), ("tokens", Some(checkpoint.tokens))],
        EventBody::State(change) => {
            if change.state == RunState::Interrupted {
                return Err("state `interrupted` is set by the console for a trainer that went away; a trainer cannot report it".into());
            }
            Vec::new()
        }
        EventBody::Exit(_) => Vec::new(),
    };
    for (name, value) in counts {
        if let Some(value) = value.filter(|&v| v > MAX_SAFE_INTEGER) {
            return Err(format!(
                "field `{name}` is {value}, above 2^53 − 1 = {MAX_SAFE_INTEGER}, the largest integer the page shows exactly"
            ));
        }
    }
    Ok(())
}

/// The first top-level key that appears twice in the JSON object `json`, if any (serde and
/// `serde_json::Value` would each quietly keep one of them).
fn duplicate_key(json: &str) -> Option<String> {
    /// A key, borrowed from the text unless it has escapes.
    #[derive(PartialEq)]
    struct Key<'a>(Cow<'a, str>);
    impl<'de> serde::Deserialize<'de> for Key<'de> {
        fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl<'de> Visitor<'de> for KeyVisitor {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a key")
                }
                fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                    Ok(Key(Cow::Borrowed(key)))
                }
                fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                    Ok(Key(Cow::Owned(key.to_string())))
                }
            }
            deserializer.deserialize_str(KeyVisitor)
        }
    }

    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
            let (mut seen, mut duplicate): (Vec<Key<'de>>, Option<String>) = (Vec::new(), None);
            // Read to the end: serde_json checks that the whole object was consumed.
            while let Some(key) = map.next_key::<Key<'de>>()? {
                map.next_value::<IgnoredAny>()?;
                if duplicate.is_none() && seen.contains(&key) {
                    duplicate = Some(key.0.to_string());
                }
                seen.push(key);
            }
            Ok(duplicate)
        }
    }
    serde_json::Deserializer::from_str(json).deserialize_map(Keys).ok().flatten()
}

fn duplicate_key_problem(key: &str) -> String {
    format!("key `{key}` appears twice in the object; each field may be given once")
}

/// A syntax error of serde_json: its message, and its column.
fn syntax_problem(err: &serde_json::Error) -> Problem {
    Problem { message: json_problem(err), column: (err.column() > 0).then_some(err.column()) }
}

/// serde_json's message without its " at line 1 column N" (the caller names the position).
fn json_problem(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(message, _)| message);
    let kind = if err.is_syntax() || err.is_eof() { "not valid JSON: " } else { "" };
    format!("{kind}{message}")
}

/// The JSON types an event field takes.
#[derive(Clone, Copy)]
enum FieldType {
    Count,
    Float,
    Text,
    Object,
    Int32,
}

impl FieldType {
    fn accepts(self, value: &Value) -> bool {
        match self {
            FieldType::Count => value.as_u64().is_some_and(|v| v <= MAX_SAFE_INTEGER),
            FieldType::Int32 => value.as_u64().is_some_and(|v| v <= u64::from(u32::MAX)),
            FieldType::Float => {
                value.is_number()
                    || value.is_null()
                    || value.as_str().is_some_and(|s| trainconsole_protocol::float::parse_non_finite(s).is_some())
            }
            FieldType::Text => value.is_string(),
            FieldType::Object => true,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            FieldType::Count => "a non-negative integer up to 2^53 − 1 (9007199254740991)",
            FieldType::Int32 => "a non-negative integer below 2^32",
            FieldType::Float => "a number (or NaN, Infinity, -Infinity)",
            FieldType::Text => "a string",
            FieldType::Object => "any JSON value",
        }
    }
}

/// The event kinds, as the errors list them.
const KINDS: &str = "one of run_start, step, eval, sample, checkpoint, state, exit";

/// `(field, type, required)` of each event kind, as in `crates/protocol/src/event.rs`.
fn kind_fields(kind: &str) -> Option<&'static [(&'static str, FieldType, bool)]> {
    use FieldType::*;
    Some(match kind {
        "run_start" => &[
            ("name", Text, false),
            ("config", Object, false),
            ("total_tokens", Count, false),
            ("total_steps", Count, false),
            ("tokens_per_step", Count, false),
            ("start_step", Count, false),
            ("start_tokens", Count, false),
            ("resumed_from", Text, false),
            ("grad_accum", Int32, false),
            ("world_size", Int32, false),
        ],
        "step" => &[
            ("step", Count, true),
            ("tokens", Count, true),
            ("loss", Float, true),
            ("lr", Float, false),
            ("grad_norm", Float, false),
            ("step_time_ms", Float, false),
            ("rank", Int32, false),
            ("micro_step", Int32, false),
        ],
        "eval" => &[("step", Count, true), ("val_loss", Float, true)],
        "sample" => &[("step", Count, true), ("text", Text, true)],
        "checkpoint" => &[("step", Count, true), ("tokens", Count, false), ("path", Text, true)],
        "state" => &[("state", Text, true), ("message", Text, false)],
        "exit" => &[("exit_code", Object, false), ("signal", Text, false), ("output_tail", Object, false)],
        _ => return None,
    })
}

/// "a step event", "an eval event".
fn a_kind_event(kind: &str) -> String {
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {kind} event")
}

/// Name the field that makes `value` an invalid event, when one can be named.
fn describe_bad_event(value: &Value) -> Option<String> {
    let Some(object) = value.as_object() else {
        return Some(format!("an event must be a JSON object, got {}", short(value)));
    };
    let kind = match object.get("kind") {
        None => return Some(format!("an event needs `kind` ({KINDS})")),
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => return Some(format!("field `kind` must be a string ({KINDS}), got {}", short(other))),
    };
    let Some(fields) = kind_fields(kind) else {
        return Some(format!("unknown kind {kind:?} ({KINDS})"));
    };
    match object.get("time") {
        None => return Some(format!("{} needs `time` (seconds since the Unix epoch)", a_kind_event(kind))),
        Some(time) if !time.is_number() => return Some(format!("field `time` must be a number, got {}", short(time))),
        Some(_) => {}
    }
    for &(name, field_type, required) in fields {
        match object.get(name) {
            None if required => return Some(format!("{} needs `{name}`", a_kind_event(kind))),
            None => {}
            Some(Value::Null) if !required => {}
            Some(field) if !field_type.accepts(field) => {
                return Some(format!("field `{name}` must be {}, got {}", field_type.expected(), short(field)));
            }
            Some(_) => {}
        }
    }
    None
}

/// A value for an error message, cut to a readable length.
fn short(value: &Value) -> String {
    let text = match value {
        Value::String(s) if trainconsole_protocol::float::parse_non_finite(s).is_some() => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 40 { format!("{}…", text.chars().take(40).collect::<String>()) } else { text }
}

/// Quote Python's bare `NaN`, `Infinity` and `-Infinity` outside JSON strings, so that
/// serde_json reads them as the wire format's strings. Text without them is not copied.
pub fn quote_bare_non_finite(text: &str) -> Cow<'_, str> {
    Quoted::new(text).text
}

/// A body with Python's bare non-finite numbers quoted, and where quotes were added, so that
/// a column in the quoted text can be named as a column of the text as posted.
struct Quoted<'a> {
    text: Cow<'a, str>,
    /// Offsets in `text` just past each quoted token (each added 2 bytes).
    quoted_ends: Vec<usize>,
}

impl<'a> Quoted<'a> {
    fn new(text: &'a str) -> Self {
        if !text.contains("NaN") && !text.contains("Infinity") {
            return Self { text: Cow::Borrowed(text), quoted_ends: Vec::new() };
        }
        const TOKENS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len() + 16);
        let mut quoted_ends = Vec::new();
        let (mut copied, mut i, mut in_string, mut escaped) = (0, 0, false, false);
        while i < bytes.len() {
            let byte = bytes[i];
            if in_string {
                match byte {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
                i += 1;
                continue;
            }
            if byte == b'"' {
                in_string = true;
                i += 1;
                continue;
            }
            let after_word = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
            let token = TOKENS.iter().find(|token| {
                text[i..].starts_with(**token)
                    && !bytes.get(i + token.len()).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
            });
            match token {
                Some(token) if !after_word => {
                    out.push_str(&text[copied..i]);
                    out.push('"');
                    out.push_str(token);
                    out.push('"');
                    quoted_ends.push(out.len());
                    i += token.len();
                    copied = i;
                }
                _ => i += 1,
            }
        }
        if quoted_ends.is_empty() {
            return Self { text: Cow::Borrowed(text), quoted_ends };
        }
        out.push_str(&text[copied..]);
        Self { text: Cow::Owned(out), quoted_ends }
    }

    /// The offset in the text as posted of offset `at` of the quoted text.
    fn original_offset(&self, at: usize) -> usize {
        at.saturating_sub(2 * self.quoted_ends.partition_point(|&end| end <= at))
    }

    /// 1-based column, in the text as posted, of offset `at` of the quoted text, on the line
    /// that starts at offset `line_start` of the quoted text.
    fn original_column(&self, line_start: usize, at: usize) -> usize {
        self.original_offset(at) - self.original_offset(line_start) + 1
    }

    /// The same for serde_json's 1-based `line` and `column` in the quoted text.
    fn original_column_at(&self, line: usize, column: usize) -> usize {
        let line_start = if line <= 1 {
            0
        } else {
            self.text.match_indices('\n').nth(line - 2).map_or(0, |(i, _)| i + 1)
        };
        self.original_column(line_start, line_start + column - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trainconsole_protocol::Step;

    fn step_of(event: &Event) -> &Step {
        match &event.body {
            EventBody::Step(step) => step,
            other => panic!("not a step: {other:?}"),
        }
    }

    fn step_json(step: u64) -> String {
        format!(r#"{{"kind":"step","time":1,"step":{step},"tokens":{},"loss":1}}"#, step * 10)
    }

    #[test]
    fn bare_non_finite_numbers_are_quoted_outside_strings_only() {
        assert_eq!(quote_bare_non_finite(r#"{"loss":NaN}"#), r#"{"loss":"NaN"}"#);
        assert_eq!(quote_bare_non_finite(r#"[Infinity,-Infinity, NaN]"#), r#"["Infinity","-Infinity", "NaN"]"#);
        // Inside strings (with escaped quotes) nothing changes, and nothing is copied.
        let text = r#"{"text":"NaN \" Infinity","loss":1}"#;
        assert!(matches!(quote_bare_non_finite(text), Cow::Borrowed(s) if s == text));
        assert!(matches!(quote_bare_non_finite(r#"{"loss":1.5}"#), Cow::Borrowed(_)));
        // Not a whole word: left for serde to refuse.
        assert_eq!(quote_bare_non_finite("NaNa xNaN"), "NaNa xNaN");
    }

    #[test]
    fn json_lines_with_python_non_finite_values() {
        let body = "{\"kind\":\"step\",\"time\":1.0,\"step\":1,\"tokens\":64,\"loss\":NaN}\n\n\
                    {\"kind\":\"step\",\"time\":2.0,\"step\":2,\"tokens\":128,\"loss\":-Infinity,\"lr\":Infinity}\r\n";
        let batch = parse_batch(body);
        assert!(batch.error.is_none(), "{:?}", batch.error);
        assert_eq!(batch.events.len(), 2);
        assert_eq!(batch.positions, [Position { line: 1, element: None }, Position { line: 3, element: None }]);
        assert!(step_of(&batch.events[0]).loss.is_nan());
        assert_eq!(step_of(&batch.events[1]).loss, f64::NEG_INFINITY);
        assert_eq!(step_of(&batch.events[1]).lr, Some(f64::INFINITY));
        assert_eq!(step_of(&batch.events[1]).tokens, 128);
    }

    #[test]
    fn null_loss_is_nan_and_null_lr_is_absent() {
        let batch = parse_batch(r#"{"kind":"step","time":1,"step":1,"tokens":1,"loss":null,"lr":null}"#);
        assert!(batch.error.is_none(), "{:?}", batch.error);
        assert!(step_of(&batch.events[0]).loss.is_nan());
        assert_eq!(step_of(&batch.events[0]).lr, None);
    }

    #[test]
    fn a_bad_line_is_named_and_the_lines_before_it_are_kept() {
        let body = "{\"kind\":\"step\",\"time\":1,\"step\":1,\"tokens\":1,\"loss\":1}\n\
                    {\"kind\":\"eval\",\"time\":1,\"step\":1,\"val_loss\":2}\n\
                    {\"kind\":\"step\", oops}\n\
                    {\"kind\":\"step\",\"time\":1,\"step\":2,\"tokens\":2,\"loss\":1}";
        let batch = parse_batch(body);
        assert_eq!(batch.events.len(), 2);
        let err = batch.error.unwrap();
        assert_eq!((err.line, err.column, err.element), (3, Some(17), None));
        assert_eq!(err.problem, "not valid JSON: key must be a string");
        assert_eq!(err.to_string(), "line 3, column 17: not valid JSON: key must be a string");
    }

    #[test]
    fn columns_count_the_text_as_posted() {
        // Quoting the two bare NaNs adds 4 bytes before the error; the column is the posted one.
        let line = r#"  {"kind":"step","time":1,"step":1,"tokens":1,"loss":NaN,"lr":NaN,"grad_norm":x}"#;
        let column = line.find('x').unwrap() + 1;
        let err = parse_batch(&format!("{}\n{line}", step_json(1))).error.unwrap();
        assert_eq!((err.line, err.column), (2, Some(column)), "{err}");
        let err = parse_batch(&format!("[{},\n{line}]", step_json(1))).error.unwrap();
        assert_eq!((err.line, err.column, err.element), (2, Some(column), Some(1)), "{err}");
    }

    #[test]
    fn wrong_types_and_missing_fields_name_the_field() {
        let cases = [
            (r#"{"time":1,"step":1}"#, "an event needs `kind` (one of run_start, step, eval, sample, checkpoint, state, exit)"),
            (r#"{"kind":"bogus","time":1}"#, "unknown kind \"bogus\""),
            (r#"{"kind":"step","step":1,"tokens":1,"loss":1}"#, "a step event needs `time` (seconds since the Unix epoch)"),
            (r#"{"kind":"step","time":"soon","step":1,"tokens":1,"loss":1}"#, "field `time` must be a number, got \"soon\""),
            (r#"{"kind":"step","time":1,"step":"x","tokens":1,"loss":1}"#, "field `step` must be a non-negative integer up to 2^53 − 1 (9007199254740991), got \"x\""),
            (r#"{"kind":"step","time":1,"step":-1,"tokens":1,"loss":1}"#, "field `step` must be a non-negative integer up to 2^53 − 1 (9007199254740991), got -1"),
            (r#"{"kind":"step","time":1,"step":1,"tokens":1e30,"loss":1}"#, "field `tokens` must be a non-negative integer up to 2^53 − 1 (9007199254740991), got 1e+30"),
            (r#"{"kind":"step","time":1,"step":1,"tokens":18446744073709551616,"loss":1}"#, "field `tokens` must be a non-negative integer up to 2^53 − 1 (9007199254740991), got 1.8446744073709552e+19"),
            (r#"{"kind":"step","time":1,"step":NaN,"tokens":1,"loss":1}"#, "field `step` must be a non-negative integer up to 2^53 − 1 (9007199254740991), got NaN"),
            (r#"{"kind":"step","time":1,"step":1,"tokens":1,"loss":"low"}"#, "field `loss` must be a number (or NaN, Infinity, -Infinity), got \"low\""),
            (r#"{"kind":"step","time":1,"step":1,"tokens":1}"#, "a step event needs `loss`"),
            (r#"{"kind":"eval","time":1,"step":1}"#, "an eval event needs `val_loss`"),
            (r#"{"kind":"state","time":1,"state":"interrupted"}"#, "state `interrupted` is set by the console"),
            (r#"{"kind":"step","time":NaN,"step":1,"tokens":1,"loss":1}"#, "field `time` must be a number, got NaN"),
            (r#"{"kind":"step","time":-5,"step":1,"tokens":1,"loss":1}"#, "field `time` must be a non-negative number of seconds since the Unix epoch, got -5"),
            (r#"{"kind":"step","time":1,"step":1,"tokens":1,"loss":1e999}"#, "not valid JSON: number out of range"),
            (r#"[1]"#, "an event must be a JSON object, got 1"),
            ("\"text\"", "an event must be a JSON object, got \"text\""),
            // Each key once: serde and serde_json::Value would quietly keep one of the two.
            (r#"{"kind":"step","kind":"eval","time":1,"step":1,"tokens":1,"loss":1}"#, "key `kind` appears twice in the object; each field may be given once"),
            (r#"{"kind":"eval","kind":"step","time":1,"step":1,"tokens":1,"loss":1}"#, "key `kind` appears twice"),
            (r#"{"kind":"step","time":1,"step":1,"tokens":1,"loss":1,"loss":2}"#, "key `loss` appears twice"),
        ];
        for (body, want) in cases {
            let batch = parse_batch(body);
            let err = batch.error.unwrap_or_else(|| panic!("accepted {body}"));
            assert!(err.problem.contains(want), "{body}: {} (want {want})", err.problem);
            assert_eq!(err.line, 1, "{body}");
        }
    }

    #[test]
    fn counts_above_two_to_the_53_are_refused_naming_the_field() {
        // 2^53 − 1 is the largest integer a browser holds exactly; it is kept.
        let batch = parse_batch(r#"{"kind":"step","time":1,"step":9007199254740991,"tokens":1,"loss":1}"#);
        assert!(batch.error.is_none(), "{:?}", batch.error);
        assert_eq!(step_of(&batch.events[0]).step, MAX_SAFE_INTEGER);
        for (body, field, value) in [
            (r#"{"kind":"step","time":1,"step":18446744073709551615,"tokens":1,"loss":1}"#, "step", "18446744073709551615"),
            (r#"{"kind":"step","time":1,"step":1,"tokens":9007199254740992,"loss":1}"#, "tokens", "9007199254740992"),
            (r#"{"kind":"checkpoint","time":1,"step":1,"tokens":9007199254740993,"path":"p"}"#, "tokens", "9007199254740993"),
            (r#"{"kind":"run_start","time":1,"total_tokens":9007199254740992}"#, "total_tokens", "9007199254740992"),
            (r#"{"kind":"run_start","time":1,"model":{"params":9007199254740992}}"#, "model.params", "9007199254740992"),
        ] {
            let err = parse_batch(body).error.unwrap_or_else(|| panic!("accepted {body}"));
            assert_eq!(
                err.problem,
                format!("field `{field}` is {value}, above 2^53 − 1 = 9007199254740991, the largest integer the page shows exactly")
            );
        }
    }

    #[test]
    fn run_names_and_configs_are_bounded() {
        let name = "n".repeat(MAX_RUN_NAME_CHARS);
        assert_eq!(parse_new_run(&serde_json::json!({ "name": name }).to_string()).unwrap().start.name, name);
        let long = "é".repeat(MAX_RUN_NAME_CHARS + 1);
        let err = parse_new_run(&serde_json::json!({ "name": long }).to_string()).unwrap_err();
        assert_eq!(err, "field `name` is 201 characters long; a run name has at most 200");
        let config = serde_json::json!({ "blob": "x".repeat(MAX_CONFIG_BYTES) });
        let err = parse_new_run(&serde_json::json!({ "config": config }).to_string()).unwrap_err();
        assert_eq!(err, format!("field `config` is {} bytes of JSON; a run's config has at most 65536 (64 KiB)", MAX_CONFIG_BYTES + 11));
        // The same limits hold for a run_start posted later.
        let err = parse_batch(&format!(r#"{{"kind":"run_start","time":1,"name":"{long}"}}"#)).error.unwrap();
        assert!(err.problem.starts_with("field `name` is 201 characters long"), "{err}");
        let err = parse_new_run(r#"{"name":"a","name":"b"}"#).unwrap_err();
        assert_eq!(err, "key `name` appears twice in the object; each field may be given once");
    }

    #[test]
    fn json_array_elements_are_named_by_line_and_index() {
        let body = "[\n {\"kind\":\"step\",\"time\":1,\"step\":1,\"tokens\":1,\"loss\":NaN},\n {\"kind\":\"step\",\"time\":1}\n]";
        let batch = parse_batch(body);
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.positions, [Position { line: 2, element: Some(0) }]);
        assert!(step_of(&batch.events[0]).loss.is_nan());
        let err = batch.error.unwrap();
        assert_eq!((err.line, err.column, err.element), (3, None, Some(1)));
        assert_eq!(err.to_string(), "line 3 (array element 1): a step event needs `step`");
    }

    #[test]
    fn a_json_array_with_a_syntax_error_keeps_the_elements_before_it() {
        // Element 2 breaks off mid-object: elements 0 and 1 are kept.
        let body = format!("[{},\n{},\n{{\"kind\":\"step\", oops}}, {}]", step_json(1), step_json(2), step_json(4));
        let batch = parse_batch(&body);
        assert_eq!(batch.events.iter().map(|e| step_of(e).step).collect::<Vec<_>>(), [1, 2]);
        let err = batch.error.unwrap();
        assert_eq!((err.line, err.column, err.element), (3, Some(17), Some(2)), "{err}");
        assert_eq!(err.to_string(), "line 3, column 17 (array element 2): not valid JSON: key must be a string");

        // A missing comma between elements names the element after it.
        let batch = parse_batch(&format!("[{} {}]", step_json(1), step_json(2)));
        assert_eq!(batch.events.len(), 1);
        let err = batch.error.unwrap();
        assert_eq!((err.element, err.problem.as_str()), (Some(1), "not valid JSON: expected `,` or `]`"));

        // Cut off: every complete element is kept.
        let batch = parse_batch(&format!("[\n{},\n{}\n", step_json(1), step_json(2)));
        assert_eq!(batch.events.len(), 2);
        let err = batch.error.unwrap();
        assert_eq!((err.line, err.element), (4, Some(2)));
        assert!(err.problem.starts_with("not valid JSON: EOF while parsing a list"), "{err}");

        // Something after the array: the whole array is kept, and the error is not an element's.
        let batch = parse_batch(&format!("[{}] {}", step_json(1), step_json(2)));
        assert_eq!(batch.events.len(), 1);
        let err = batch.error.unwrap();
        assert_eq!(err.element, None);
        assert_eq!(err.problem, "not valid JSON: trailing characters after the array");
    }
}
