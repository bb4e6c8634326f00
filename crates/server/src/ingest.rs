//! Reading a batch of events posted by an external trainer (`POST /api/runs/{id}/events`).
//!
//! A body is either JSON lines (one event object per line; blank lines are skipped) or one
//! JSON array of event objects, in the wire format of [`trainconsole_protocol::Event`].
//! Python's `json.dumps` writes non-finite floats as bare `NaN`, `Infinity` and `-Infinity`,
//! which JSON does not have; outside strings they are read as the wire format's `"NaN"`,
//! `"Infinity"` and `"-Infinity"`, so the values are kept as they are.
//!
//! Parsing stops at the first bad event: the events before it are returned with an error
//! that names its line (1-based) and what is wrong, so the caller can store the good ones.

use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use trainconsole_protocol::{Event, EventBody, RunStart, RunState};

/// Largest body `POST /api/runs/{id}/events` takes, in bytes (4 MiB, about 25,000 step
/// events); a larger one is answered 413 and nothing of it is stored.
pub const MAX_INGEST_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The events read from a body, and the error that stopped the reading, if any.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    /// Every valid event before the first bad one, in body order.
    pub events: Vec<Event>,
    /// The first bad event; `None` when the whole body was read.
    pub error: Option<LineError>,
}

/// What is wrong with one line of a posted body.
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    /// 1-based line of the body where the bad event starts.
    pub line: usize,
    /// What is wrong, for people, e.g. ``missing field `kind` ``.
    pub problem: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// Read a posted body (JSON lines or a JSON array) into events.
pub fn parse_batch(body: &str) -> ParsedBatch {
    let text = quote_bare_non_finite(body);
    let text = text.as_ref();
    if text.trim_start().starts_with('[') { parse_array(text) } else { parse_lines(text) }
}

fn parse_lines(text: &str) -> ParsedBatch {
    let mut batch = ParsedBatch::default();
    for (index, line) in text.split('\n').enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_event(line) {
            Ok(event) => batch.events.push(event),
            Err(problem) => {
                batch.error = Some(LineError { line: index + 1, problem });
                break;
            }
        }
    }
    batch
}

fn parse_array(text: &str) -> ParsedBatch {
    let mut batch = ParsedBatch::default();
    let elements: Vec<&RawValue> = match serde_json::from_str(text) {
        Ok(elements) => elements,
        Err(err) => {
            batch.error = Some(LineError { line: err.line().max(1), problem: json_problem(&err) });
            return batch;
        }
    };
    for (index, element) in elements.iter().enumerate() {
        match parse_event(element.get()) {
            Ok(event) => batch.events.push(event),
            Err(problem) => {
                // `element` borrows from `text`: its offset gives the line it starts on.
                let offset = (element.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
                let line = text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1;
                batch.error = Some(LineError { line, problem: format!("array element {index}: {problem}") });
                break;
            }
        }
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
/// with no name and no budget.
pub fn parse_new_run(body: &str) -> Result<NewRun, String> {
    let body = if body.trim().is_empty() { "{}" } else { body };
    let text = quote_bare_non_finite(body);
    let mut value: Value = serde_json::from_str(&text).map_err(|err| json_problem(&err))?;
    let Some(object) = value.as_object_mut() else {
        return Err(format!("the body must be a JSON object describing the run, got {}", short(&value)));
    };
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
    let event = parse_event(&value.to_string())?;
    match event.body {
        EventBody::RunStart(start) => Ok(NewRun { start, time: event.time, force_kill_grace_secs: grace }),
        _ => Err("the body must describe a run".into()),
    }
}

/// One event from its JSON text (bare non-finite numbers already quoted).
fn parse_event(json: &str) -> Result<Event, String> {
    let event: Event = match serde_json::from_str(json) {
        Ok(event) => event,
        Err(err) if err.is_data() => {
            // serde's message for a field of an internally tagged enum does not name the
            // field; look at the object to say which one is wrong.
            let value: Value = serde_json::from_str(json).map_err(|err| json_problem(&err))?;
            return Err(describe_bad_event(&value).unwrap_or_else(|| json_problem(&err)));
        }
        Err(err) => return Err(json_problem(&err)),
    };
    if !event.time.is_finite() {
        return Err(format!("field `time` must be a finite number of seconds since the Unix epoch, got {}", event.time));
    }
    if let EventBody::State(change) = &event.body
        && change.state == RunState::Interrupted
    {
        return Err("state `interrupted` is set by the console for a trainer that went away; a trainer cannot report it".into());
    }
    Ok(event)
}

/// serde_json's message without its " at line 1 column N" (the caller names the line),
/// with the column added back in words.
fn json_problem(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let message = text.rsplit_once(" at line ").map_or(text.as_str(), |(message, _)| message);
    let kind = if err.is_syntax() || err.is_eof() { "not valid JSON: " } else { "" };
    if err.column() > 0 { format!("{kind}{message} (column {})", err.column()) } else { format!("{kind}{message}") }
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
            FieldType::Count => value.as_u64().is_some(),
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
            FieldType::Count => "a non-negative integer below 2^64",
            FieldType::Int32 => "a non-negative integer below 2^32",
            FieldType::Float => "a number (or NaN, Infinity, -Infinity)",
            FieldType::Text => "a string",
            FieldType::Object => "any JSON value",
        }
    }
}

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

/// Name the field that makes `value` an invalid event, when one can be named.
fn describe_bad_event(value: &Value) -> Option<String> {
    let Some(object) = value.as_object() else {
        return Some(format!("an event must be a JSON object, got {}", short(value)));
    };
    let kind = match object.get("kind") {
        None => return Some("missing field `kind` (one of run_start, step, eval, sample, checkpoint, state, exit)".into()),
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => return Some(format!("field `kind` must be a string, got {}", short(other))),
    };
    let Some(fields) = kind_fields(kind) else {
        return Some(format!("unknown kind {kind:?} (one of run_start, step, eval, sample, checkpoint, state, exit)"));
    };
    match object.get("time") {
        None => return Some("missing field `time` (seconds since the Unix epoch)".into()),
        Some(time) if !time.is_number() => return Some(format!("field `time` must be a number, got {}", short(time))),
        Some(_) => {}
    }
    for &(name, field_type, required) in fields {
        match object.get(name) {
            None if required => return Some(format!("missing field `{name}` of a {kind} event")),
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
    if !text.contains("NaN") && !text.contains("Infinity") {
        return Cow::Borrowed(text);
    }
    const TOKENS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
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
                i += token.len();
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
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

    #[test]
    fn bare_non_finite_numbers_are_quoted_outside_strings_only() {
        assert_eq!(quote_bare_non_finite(r#"{"loss":NaN}"#), r#"{"loss":"NaN"}"#);
        assert_eq!(quote_bare_non_finite(r#"[Infinity,-Infinity, NaN]"#), r#"["Infinity","-Infinity", "NaN"]"#);
        // Inside strings (with escaped quotes) nothing changes.
        let text = r#"{"text":"NaN \" Infinity","loss":1}"#;
        assert!(matches!(quote_bare_non_finite(text), Cow::Owned(ref s) if s == text));
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
        assert!(step_of(&batch.events[0]).loss.is_nan());
        assert_eq!(step_of(&batch.events[1]).loss, f64::NEG_INFINITY);
        assert_eq!(step_of(&batch.events[1]).lr, Some(f64::INFINITY));
        assert_eq!(step_of(&batch.events[1]).tokens, 128);
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
        assert_eq!(err.line, 3);
        assert!(err.problem.starts_with("not valid JSON: key must be a string (column 17)"), "{}", err.problem);
    }

    #[test]
    fn wrong_types_and_missing_fields_name_the_field() {
        let cases = [
            (r#"{"time":1,"step":1}"#, "missing field `kind`"),
            (r#"{"kind":"bogus","time":1}"#, "unknown kind \"bogus\""),
            (r#"{"kind":"step","step":1,"tokens":1,"loss":1}"#, "missing field `time`"),
            (r#"{"kind":"step","time":"soon","step":1,"tokens":1,"loss":1}"#, "field `time` must be a number, got \"soon\""),
            (r#"{"kind":"step","time":1,"step":"x","tokens":1,"loss":1}"#, "field `step` must be a non-negative integer below 2^64, got \"x\""),
            (r#"{"kind":"step","time":1,"step":-1,"tokens":1,"loss":1}"#, "field `step` must be a non-negative integer below 2^64, got -1"),
            (r#"{"kind":"step","time":1,"step":1,"tokens":1e30,"loss":1}"#, "field `tokens` must be a non-negative integer below 2^64, got 1e+30"),
            (r#"{"kind":"step","time":1,"step":1,"tokens":18446744073709551616,"loss":1}"#, "field `tokens` must be a non-negative integer below 2^64, got 1.8446744073709552e+19"),
            (r#"{"kind":"step","time":1,"step":NaN,"tokens":1,"loss":1}"#, "field `step` must be a non-negative integer below 2^64, got NaN"),
            (r#"{"kind":"step","time":1,"step":1,"tokens":1,"loss":"low"}"#, "field `loss` must be a number (or NaN, Infinity, -Infinity), got \"low\""),
            (r#"{"kind":"step","time":1,"step":1,"tokens":1}"#, "missing field `loss` of a step event"),
            (r#"{"kind":"state","time":1,"state":"interrupted"}"#, "state `interrupted` is set by the console"),
            (r#"{"kind":"step","time":NaN,"step":1,"tokens":1,"loss":1}"#, "field `time` must be a number, got NaN"),
            (r#"{"kind":"step","time":1,"step":1,"tokens":1,"loss":1e999}"#, "not valid JSON: number out of range"),
            (r#"[1]"#, "an event must be a JSON object, got 1"),
            ("\"text\"", "an event must be a JSON object, got \"text\""),
        ];
        for (body, want) in cases {
            let batch = parse_batch(body);
            let err = batch.error.unwrap_or_else(|| panic!("accepted {body}"));
            assert!(err.problem.contains(want), "{body}: {} (want {want})", err.problem);
            assert_eq!(err.line, 1, "{body}");
        }
    }

    #[test]
    fn json_array_elements_are_named_by_line_and_index() {
        let body = "[\n {\"kind\":\"step\",\"time\":1,\"step\":1,\"tokens\":1,\"loss\":NaN},\n {\"kind\":\"step\",\"time\":1}\n]";
        let batch = parse_batch(body);
        assert_eq!(batch.events.len(), 1);
        assert!(step_of(&batch.events[0]).loss.is_nan());
        let err = batch.error.unwrap();
        assert_eq!(err.line, 3);
        assert_eq!(err.problem, "array element 1: missing field `step` of a step event");

        let batch = parse_batch("[\n{\"kind\":\"step\"\n");
        assert!(batch.events.is_empty());
        assert_eq!(batch.error.unwrap().line, 3);
    }
}
