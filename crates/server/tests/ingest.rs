//! Runs reported over HTTP by external trainers: `POST /api/runs`, `POST /api/runs/{id}/events`,
//! the abort handshake and force kill.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use trainconsole_server::{Hub, router};

static PAGE: &[(&str, &[u8])] = &[("/index.html", b"<!doctype html><title>t</title>")];

struct Call<'a> {
    method: &'a str,
    uri: String,
    body: Vec<u8>,
    headers: Vec<(&'a str, String)>,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, uri: impl Into<String>) -> Self {
        Self { method, uri: uri.into(), body: Vec::new(), headers: Vec::new() }
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    fn token(mut self, token: &str) -> Self {
        self.headers.push(("authorization", format!("Bearer {token}")));
        self
    }
    fn header(mut self, name: &'a str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
    async fn send(self, hub: &Hub) -> (StatusCode, Value) {
        let mut request = Request::builder().method(self.method).uri(&self.uri).header("host", "127.0.0.1:7437");
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        let response = router(hub.clone(), PAGE).oneshot(request.body(Body::from(self.body)).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn step_line(step: u64, loss: &str) -> String {
    format!(r#"{{"kind":"step","time":{},"step":{step},"tokens":{},"loss":{loss}}}"#, 1_800_000_000 + step, step * 100)
}

/// Create an external run; returns (id, token).
async fn create(hub: &Hub, body: Value) -> (String, String) {
    let (status, created) = Call::new("POST", "/api/runs").body(body.to_string()).send(hub).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (created["id"].as_str().unwrap().to_string(), created["token"].as_str().unwrap().to_string())
}

async fn events(hub: &Hub, id: &str) -> Vec<Value> {
    let (status, page) = Call::new("GET", format!("/api/runs/{id}/events?limit=10000")).send(hub).await;
    assert_eq!(status, StatusCode::OK);
    page["events"].as_array().unwrap().clone()
}

async fn summary(hub: &Hub, id: &str) -> Value {
    Call::new("GET", format!("/api/runs/{id}")).send(hub).await.1
}

#[tokio::test]
async fn create_post_and_read_back_with_non_finite_values() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(dir.path()).unwrap();
    let (status, created) = Call::new("POST", "/api/runs")
        .body(json!({"name": "torch run", "config": {"lr": 0.001}, "total_tokens": 10_000, "grad_accum": 4}).to_string())
        .send(&hub)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap();
    let token = created["token"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert_eq!(created["url"], format!("http://127.0.0.1:7437/runs/{id}"));

    let body = [step_line(1, "2.5"), step_line(2, "NaN"), String::new(), step_line(3, "Infinity"), step_line(4, "-Infinity")].join("\n");
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/events")).token(token).body(body).send(&hub).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"last_seq": 5, "stored": 4, "abort_requested": false, "kill_requested": false, "state": "running"}));

    let stored = events(&hub, id).await;
    assert_eq!(stored[0]["kind"], "run_start");
    assert_eq!(stored[0]["name"], "torch run");
    assert_eq!(stored[0]["grad_accum"], 4);
    let losses: Vec<&Value> = stored[1..].iter().map(|e| &e["loss"]).collect();
    assert_eq!(losses, [&json!(2.5), &json!("NaN"), &json!("Infinity"), &json!("-Infinity")]);

    let s = summary(&hub, id).await;
    assert_eq!(s["name"], "torch run");
    assert_eq!(s["total_tokens"], 10_000);
    assert_eq!(s["tokens"], 400);
    assert_eq!(s["progress"], 0.04);
    assert_eq!(s["loss"], "-Infinity");
    assert_eq!(s["config"]["lr"], 0.001);

    // A JSON array works the same.
    let body = format!("[{}, {}]", step_line(5, "2.0"), step_line(6, "NaN"));
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/events")).token(token).body(body).send(&hub).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["last_seq"], 7);
    assert_eq!(summary(&hub, id).await["step"], 6);
}

#[tokio::test]
async fn malformed_bodies_keep_the_lines_before_the_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(dir.path()).unwrap();
    let (id, token) = create(&hub, json!({"name": "bad input", "total_steps": 100})).await;
    let post = |body: String| Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(body);

    let (status, answer) = post(format!("{}\n{}\n{{\"kind\":\"step\", oops}}\n{}", step_line(1, "2"), step_line(2, "2"), step_line(3, "2")))
        .send(&hub)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["line"], 3);
    assert_eq!(answer["error"], "line 3, column 17: not valid JSON: key must be a string");
    assert_eq!(answer["column"], 17);
    assert_eq!(answer["stored"], 2);
    assert_eq!(answer["last_seq"], 3);

    let cases = [
        (r#"{"time":1,"step":4,"tokens":1,"loss":1}"#.to_string(), "line 2: an event needs `kind`"),
        (r#"{"kind":"step","time":1,"step":"four","tokens":1,"loss":1}"#.to_string(), "line 2: field `step` must be a non-negative integer up to 2^53 − 1 (9007199254740991), got \"four\""),
        (r#"{"kind":"step","time":1,"step":4,"tokens":99999999999999999999999,"loss":1}"#.to_string(), "line 2: field `tokens` must be a non-negative integer up to 2^53 − 1"),
        (r#"{"kind":"step","time":1,"step":4,"tokens":1,"loss":1e999}"#.to_string(), "line 2, column 56: not valid JSON: number out of range"),
        (r#"{"kind":"eval","time":1,"step":4,"val_loss":[1]}"#.to_string(), "line 2: field `val_loss` must be a number"),
        (r#"{"kind":"eval","time":1,"step":4}"#.to_string(), "line 2: an eval event needs `val_loss`"),
        (r#"{"kind":"step","kind":"eval","time":1,"step":4,"tokens":1,"loss":1}"#.to_string(), "line 2: key `kind` appears twice in the object"),
        (r#"{"kind":"step","time":-5,"step":4,"tokens":1,"loss":1}"#.to_string(), "line 2: field `time` must be a non-negative number of seconds since the Unix epoch, got -5"),
        (
            r#"{"kind":"step","time":1,"step":18446744073709551615,"tokens":1,"loss":1}"#.to_string(),
            "line 2: field `step` is 18446744073709551615, above 2^53 − 1 = 9007199254740991",
        ),
        (r#"{"kind":"exit","time":1,"exit_code":0}"#.to_string(), "line 2: kind `exit` is reported by the console that started the trainer's process"),
    ];
    for (bad, want) in cases {
        let before = events(&hub, &id).await.len();
        let (status, answer) = post(format!("{}\n{bad}", step_line(4, "1.5"))).send(&hub).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(answer["error"].as_str().unwrap().starts_with(want), "{bad}: {answer}");
        assert_eq!(answer["stored"], 1, "{bad}");
        assert_eq!(events(&hub, &id).await.len(), before + 1, "the good first line of {bad} is kept");
    }

    // Not UTF-8 on line 2: line 1 is kept.
    let mut body = format!("{}\n", step_line(5, "1.4")).into_bytes();
    body.extend_from_slice(b"{\"kind\":\"sample\",\"time\":1,\"step\":5,\"text\":\"\xff\"}");
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(body).send(&hub).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().starts_with("line 2, column 44: not UTF-8 (byte 110 of the body)"), "{answer}");
    assert_eq!(answer["stored"], 1);

    // In a JSON array too, the bad bytes are what is named.
    let mut body = format!("[{},\n", step_line(6, "1.3")).into_bytes();
    body.extend_from_slice(b"{\"kind\":\"sample\",\"time\":1,\"step\":6,\"text\":\"\xff\"}]");
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(body).send(&hub).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().starts_with("line 2, column 44: not UTF-8 (byte 112 of the body)"), "{answer}");
    assert_eq!(answer["stored"], 1, "the element before the bad bytes is kept");

    // A syntax error in a JSON array keeps the elements before it and names the element.
    let before = events(&hub, &id).await.len();
    let body = format!("[{},\n{},\n{{\"kind\":\"step\" \"time\":1}}]", step_line(7, "1.2"), step_line(8, "1.1"));
    let (status, answer) = post(body).send(&hub).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "line 3, column 16 (array element 2): not valid JSON: expected `,` or `}`");
    assert_eq!((answer["line"].as_u64(), answer["column"].as_u64(), answer["element"].as_u64()), (Some(3), Some(16), Some(2)));
    assert_eq!(answer["stored"], 2);
    assert_eq!(events(&hub, &id).await.len(), before + 2);

    // 10 MB: refused whole, nothing stored.
    let before = events(&hub, &id).await.len();
    let huge = format!("{}\n", step_line(6, "1.0")).repeat(10 * 1024 * 1024 / 70);
    assert!(huge.len() > 10_000_000);
    let (status, answer) = post(huge).send(&hub).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer["error"].as_str().unwrap().contains("larger than 4 MiB"), "{answer}");
    assert_eq!(events(&hub, &id).await.len(), before);

    // The bad creations.
    for (body, want) in [
        ("[1]", "the body must be a JSON object"),
        (r#"{"total_tokens":-5}"#, "field `total_tokens` must be a non-negative integer"),
        (r#"{"name":"x","force_kill_grace_secs":"soon"}"#, "field `force_kill_grace_secs` must be a non-negative number"),
        ("{", "not valid JSON"),
        (&json!({"name": "n".repeat(3 << 20)}).to_string(), "field `name` is 3145728 characters long; a run name has at most 200"),
        (&json!({"config": {"blob": "x".repeat(100_000)}}).to_string(), "field `config` is 100011 bytes of JSON; a run's config has at most 65536 (64 KiB)"),
        (r#"{"total_steps":9007199254740992}"#, "field `total_steps` is 9007199254740992, above 2^53 − 1"),
    ] {
        let (status, answer) = Call::new("POST", "/api/runs").body(body).send(&hub).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer["error"].as_str().unwrap().contains(want), "{body}: {answer}");
    }
}

#[tokio::test]
async fn write_tokens_guard_each_run() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(dir.path()).unwrap();
    let (a, token_a) = create(&hub, json!({"name": "a"})).await;
    let (b, _) = create(&hub, json!({"name": "b"})).await;
    let own = hub.create_run("own", "http://127.0.0.1:7437", Box::new(|| {})).unwrap().id().to_string();
    let line = step_line(1, "1.0");

    let (status, answer) = Call::new("POST", format!("/api/runs/{a}/events")).body(line.clone()).send(&hub).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("Authorization: Bearer"), "{answer}");
    let (status, _) = Call::new("POST", format!("/api/runs/{a}/events")).token("0123").body(line.clone()).send(&hub).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = Call::new("POST", format!("/api/runs/{b}/events")).token(&token_a).body(line.clone()).send(&hub).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "run a's token does not write run b");
    let (status, answer) = Call::new("POST", format!("/api/runs/{own}/events")).token(&token_a).body(line.clone()).send(&hub).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(answer["error"].as_str().unwrap().contains("trained by this console"), "{answer}");
    let (status, _) = Call::new("POST", "/api/runs/nope/events").token(&token_a).body(line.clone()).send(&hub).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for id in [&a, &b, &own] {
        assert!(events(&hub, id).await.iter().all(|e| e["kind"] != "step"), "nothing was stored in {id}");
    }

    // A page on another site cannot post; a script (no Origin) and our own page can.
    let (status, _) = Call::new("POST", format!("/api/runs/{a}/events")).token(&token_a).header("origin", "http://evil.example").body(line.clone()).send(&hub).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = Call::new("POST", "/api/runs").header("origin", "http://evil.example").body("{}").send(&hub).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = Call::new("POST", format!("/api/runs/{a}/events")).token(&token_a).header("origin", "http://127.0.0.1:7437").body(line).send(&hub).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_batch_posted_again_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(dir.path()).unwrap();
    let (id, token) = create(&hub, json!({"name": "retry"})).await;
    let post = |key: &str, body: String| Call::new("POST", format!("/api/runs/{id}/events")).token(&token).header("idempotency-key", key).body(body);

    let batch = [step_line(1, "2"), step_line(2, "2")].join("\n");
    let (status, first) = post("c1-1", batch.clone()).send(&hub).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((first["stored"].as_u64(), first["last_seq"].as_u64()), (Some(2), Some(3)));
    let (status, again) = post("c1-1", batch).send(&hub).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((again["stored"].as_u64(), again["last_seq"].as_u64()), (Some(0), Some(3)));

    // A batch cut by a bad line, posted again whole after the client fixed nothing: the good
    // part is not stored twice; fixed, the rest is stored.
    let (status, _) = post("c1-2", format!("{}\nbad", step_line(3, "2"))).send(&hub).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post("c1-2", format!("{}\nbad", step_line(3, "2"))).send(&hub).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, fixed) = post("c1-2", format!("{}\n{}", step_line(3, "2"), step_line(4, "2"))).send(&hub).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fixed["stored"], 1);
    let steps: Vec<u64> = events(&hub, &id).await.iter().filter_map(|e| e["step"].as_u64()).collect();
    assert_eq!(steps, [1, 2, 3, 4]);
    // The keys survive a restart of the console.
    drop(hub);
    let hub = Hub::open(dir.path()).unwrap();
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/events"))
        .token(&token)
        .header("idempotency-key", "c1-1")
        .body([step_line(1, "2"), step_line(2, "2")].join("\n"))
        .send(&hub)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["stored"], 0);
    assert_eq!(events(&hub, &id).await.len(), 5);
}

#[tokio::test]
async fn abort_handshake_and_force_kill() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(dir.path()).unwrap();
    let (id, token) = create(&hub, json!({"name": "wrapped", "force_kill_grace_secs": 0.0})).await;
    let (slow, _) = create(&hub, json!({"name": "patient", "force_kill_grace_secs": 60})).await;
    let (plain, _) = create(&hub, json!({"name": "http only"})).await;
    let post = |body: String| Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(body);

    // No force kill before an abort, nor for a process no console started.
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/kill")).send(&hub).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(answer["error"].as_str().unwrap().contains("abort it first"), "{answer}");
    let (status, answer) = Call::new("POST", format!("/api/runs/{plain}/kill")).send(&hub).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(answer["error"].as_str().unwrap().contains("cannot kill it"), "{answer}");

    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/abort")).send(&hub).await;
    assert_eq!((status, answer["state"].as_str()), (StatusCode::ACCEPTED, Some("stopping")));
    let (status, _) = Call::new("POST", format!("/api/runs/{id}/abort")).send(&hub).await;
    assert_eq!(status, StatusCode::ACCEPTED, "a second abort changes nothing");
    let s = summary(&hub, &id).await;
    assert_eq!(s["state"], "stopping");
    assert!(s["stopping_since"].as_f64().is_some());
    assert_eq!(s["force_kill_grace_secs"], 0.0);

    // The trainer learns of it from its next post (an empty one is a poll), and answers.
    let (status, answer) = post(String::new()).send(&hub).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["abort_requested"], true);
    assert_eq!(answer["kill_requested"], false);
    let (_, answer) = post(format!("{}\n{}", r#"{"kind":"state","time":1800000010,"state":"stopping"}"#, step_line(7, "1.5"))).send(&hub).await;
    assert_eq!(answer["state"], "stopping");
    assert_eq!(summary(&hub, &id).await["step"], 7, "metrics still arrive while stopping");

    // Grace period 0: force kill is accepted and reaches the trainer's console.
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/kill")).send(&hub).await;
    assert_eq!((status, answer["state"].as_str()), (StatusCode::ACCEPTED, Some("stopping")), "{answer}");
    let (_, answer) = post(String::new()).send(&hub).await;
    assert_eq!(answer["kill_requested"], true);
    let (_, answer) = post(
        [
            r#"{"kind":"exit","time":1800000011,"signal":"SIGTERM","output_tail":["step 7","bye"]}"#,
            r#"{"kind":"state","time":1800000011,"state":"aborted","message":"killed by SIGTERM"}"#,
        ]
        .join("\n"),
    )
    .send(&hub)
    .await;
    assert_eq!(answer["state"], "aborted");
    let s = summary(&hub, &id).await;
    assert_eq!(s["exit"], json!({"signal": "SIGTERM", "output_tail": ["step 7", "bye"]}));
    assert_eq!(s["force_kill_grace_secs"], Value::Null, "a dead process cannot be killed");
    let (status, _) = Call::new("POST", format!("/api/runs/{id}/kill")).send(&hub).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let stored = events(&hub, &id).await;
    let states: Vec<&str> = stored.iter().filter_map(|e| e["state"].as_str()).collect();
    assert_eq!(states, ["stopping", "stopping", "aborted"]);

    // A 60 s grace period: too early.
    Call::new("POST", format!("/api/runs/{slow}/abort")).send(&hub).await;
    let (status, answer) = Call::new("POST", format!("/api/runs/{slow}/kill")).send(&hub).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(answer["error"].as_str().unwrap().contains("of its 60 s grace period left"), "{answer}");
}

#[tokio::test]
async fn a_restarted_console_shows_the_run_interrupted_until_the_trainer_posts_again() {
    let dir = tempfile::tempdir().unwrap();
    let (id, token) = {
        let hub = Hub::open(dir.path()).unwrap();
        let (id, token) = create(&hub, json!({"name": "restart", "total_steps": 10})).await;
        Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(step_line(1, "2")).send(&hub).await;
        (id, token)
    };
    let hub = Hub::open(dir.path()).unwrap();
    assert_eq!(summary(&hub, &id).await["state"], "interrupted");
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(step_line(2, "2")).send(&hub).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["state"], "running");
    assert_eq!(answer["last_seq"], 3);
    let s = summary(&hub, &id).await;
    assert_eq!((s["state"].as_str(), s["step"].as_u64()), (Some("running"), Some(2)));
}

#[tokio::test]
async fn concurrent_posts_from_several_ranks_each_count_their_own_events() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(dir.path()).unwrap();
    let (id, token) = create(&hub, json!({"name": "two ranks", "world_size": 2})).await;
    let mut tasks = Vec::new();
    for rank in 0..2u64 {
        let (hub, id, token) = (hub.clone(), id.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut stored = 0;
            for batch in 0..20u64 {
                let body: Vec<String> = (1..=5)
                    .map(|i| format!(r#"{{"kind":"step","time":{},"step":{},"tokens":1,"loss":1,"rank":{rank}}}"#, 1_800_000_000 + batch, batch * 5 + i))
                    .collect();
                let (status, answer) = Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(body.join("\n")).send(&hub).await;
                assert_eq!(status, StatusCode::OK);
                stored += answer["stored"].as_u64().unwrap();
            }
            stored
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 100, "each rank's answers count its own 100 events");
    }
    let stored = events(&hub, &id).await;
    assert_eq!(stored.len(), 201);
    assert_eq!(stored.iter().filter(|e| e["rank"] == 1).count(), 100);
}

#[tokio::test]
async fn a_silent_trainer_shows_as_interrupted_until_it_posts_again() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(dir.path()).unwrap();
    let (id, token) = create(&hub, json!({"name": "quiet"})).await;
    let (done, done_token) = create(&hub, json!({"name": "done"})).await;
    Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(step_line(1, "2")).send(&hub).await;
    let end = r#"{"kind":"state","time":1800000001,"state":"completed"}"#;
    Call::new("POST", format!("/api/runs/{done}/events")).token(&done_token).body(end).send(&hub).await;

    hub.interrupt_silent_runs(std::time::Duration::from_secs(3600));
    assert_eq!(summary(&hub, &id).await["state"], "running", "not silent for an hour");
    hub.interrupt_silent_runs(std::time::Duration::ZERO);
    let s = summary(&hub, &id).await;
    assert_eq!(s["state"], "interrupted");
    assert_eq!(s["message"], "the trainer has posted nothing for 0 s");
    assert_eq!(summary(&hub, &done).await["state"], "completed", "an ended run stays as it ended");

    // An empty post (a poll) is enough to be alive again.
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/events")).token(&token).send(&hub).await;
    assert_eq!((status, answer["state"].as_str()), (StatusCode::OK, Some("running")));
    let s = summary(&hub, &id).await;
    assert_eq!((s["state"].as_str(), s["message"].as_str()), (Some("running"), Some("")));
}

#[tokio::test]
async fn only_the_console_that_started_the_process_reports_its_exit() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(dir.path()).unwrap();
    let exit = r#"{"kind":"exit","time":1800000009,"exit_code":0,"output_tail":[]}"#;

    // A trainer posting for itself: `exit` is the console's to report.
    let (id, token) = create(&hub, json!({"name": "http only"})).await;
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(format!("{}\n{exit}", step_line(1, "2"))).send(&hub).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["error"],
        "line 2: kind `exit` is reported by the console that started the trainer's process (`trainconsole run`), not by a trainer"
    );
    assert_eq!((answer["stored"].as_u64(), answer["line"].as_u64()), (Some(1), Some(2)));
    let s = summary(&hub, &id).await;
    assert_eq!((s["exit"].clone(), s["step"].as_u64()), (Value::Null, Some(1)));

    // `trainconsole run --server` created its run with a grace period: it reports the exit,
    // after the trainer's own end too.
    let (id, token) = create(&hub, json!({"name": "wrapped", "force_kill_grace_secs": 60})).await;
    let end = r#"{"kind":"state","time":1800000008,"state":"completed"}"#;
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(format!("{end}\n{exit}")).send(&hub).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(summary(&hub, &id).await["exit"]["exit_code"], 0);
}

#[tokio::test]
async fn an_ended_run_takes_no_more_events() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(dir.path()).unwrap();
    for end in ["completed", "aborted", "failed"] {
        let (id, token) = create(&hub, json!({"name": end})).await;
        let post = |body: String| Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(body);
        // In one post: a step, the end, and a step after it (refused, naming the state).
        let end_line = format!(r#"{{"kind":"state","time":1800000005,"state":"{end}"}}"#);
        let (status, answer) = post(format!("{}\n{end_line}\n{}", step_line(1, "2"), step_line(2, "2"))).send(&hub).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(
            answer["error"],
            format!("line 3: the run has already ended ({end}) and takes no more events; a trainer restarted after the end reports a new run (POST /api/runs, with its checkpoint's start_step, start_tokens and resumed_from)")
        );
        assert_eq!((answer["stored"].as_u64(), answer["state"].as_str()), (Some(2), Some(end)));
        // A later post: refused whole, nothing stored.
        let (status, answer) = post(step_line(3, "2")).send(&hub).await;
        assert_eq!((status, answer["stored"].as_u64(), answer["line"].as_u64()), (StatusCode::CONFLICT, Some(0), Some(1)));
        let s = summary(&hub, &id).await;
        assert_eq!((s["state"].as_str(), s["step"].as_u64(), s["last_seq"].as_u64()), (Some(end), Some(1), Some(3)));
        // The ending batch posted again with its key (its answer was lost): taken, nothing doubled.
        let batch = format!("{}\n{end_line}", step_line(1, "2"));
        let key = format!("end-{end}");
        let (status, _) = post(batch.clone()).header("idempotency-key", &key).send(&hub).await;
        assert_eq!(status, StatusCode::CONFLICT, "the run had ended already");
        let (id2, token2) = create(&hub, json!({"name": end})).await;
        let post2 = |body: String| Call::new("POST", format!("/api/runs/{id2}/events")).token(&token2).body(body).header("idempotency-key", &key);
        assert_eq!(post2(batch.clone()).send(&hub).await.0, StatusCode::OK);
        let (status, answer) = post2(batch).send(&hub).await;
        assert_eq!((status, answer["stored"].as_u64()), (StatusCode::OK, Some(0)), "{answer}");
        assert_eq!(events(&hub, &id2).await.len(), 3);
        // A poll still answers, with the state.
        let (status, answer) = post(String::new()).send(&hub).await;
        assert_eq!((status, answer["state"].as_str()), (StatusCode::OK, Some(end)));
    }
}

#[tokio::test]
async fn a_silent_trainer_can_be_asked_to_abort_and_learns_it_on_its_next_post() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(dir.path()).unwrap();
    let (id, token) = create(&hub, json!({"name": "quiet"})).await;
    Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(step_line(1, "2")).send(&hub).await;
    hub.interrupt_silent_runs(std::time::Duration::ZERO);
    assert_eq!(summary(&hub, &id).await["state"], "interrupted");

    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/abort")).send(&hub).await;
    assert_eq!((status, answer["state"].as_str()), (StatusCode::ACCEPTED, Some("interrupted")), "{answer}");
    let s = summary(&hub, &id).await;
    assert_eq!(s["state"], "interrupted", "still silent: shown as it is");
    assert!(s["stopping_since"].as_f64().is_some(), "the request is recorded");
    assert!(s["message"].as_str().unwrap().starts_with("abort requested while the trainer was silent"), "{s}");

    // The trainer's next post learns of it, and the run shows `stopping`.
    let (status, answer) = Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(step_line(2, "2")).send(&hub).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((answer["abort_requested"].as_bool(), answer["state"].as_str()), (Some(true), Some("stopping")));

    // A run that ended before it fell silent is still refused.
    let (done, done_token) = create(&hub, json!({"name": "done"})).await;
    let end = r#"{"kind":"state","time":1800000001,"state":"completed"}"#;
    Call::new("POST", format!("/api/runs/{done}/events")).token(&done_token).body(end).send(&hub).await;
    hub.interrupt_silent_runs(std::time::Duration::ZERO);
    let (status, answer) = Call::new("POST", format!("/api/runs/{done}/abort")).send(&hub).await;
    assert_eq!((status, answer["state"].as_str()), (StatusCode::CONFLICT, Some("completed")));
}

#[tokio::test]
async fn a_restarted_console_takes_an_abort_for_a_run_that_was_live() {
    let dir = tempfile::tempdir().unwrap();
    let (id, token) = {
        let hub = Hub::open(dir.path()).unwrap();
        let (id, token) = create(&hub, json!({"name": "restart"})).await;
        Call::new("POST", format!("/api/runs/{id}/events")).token(&token).body(step_line(1, "2")).send(&hub).await;
        (id, token)
    };
    let hub = Hub::open(dir.path()).unwrap();
    assert_eq!(summary(&hub, &id).await["state"], "interrupted");
    let (status, _) = Call::new("POST", format!("/api/runs/{id}/abort")).send(&hub).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(summary(&hub, &id).await["state"], "interrupted");
    let (_, answer) = Call::new("POST", format!("/api/runs/{id}/events")).token(&token).send(&hub).await;
    assert_eq!((answer["abort_requested"].as_bool(), answer["state"].as_str()), (Some(true), Some("stopping")));
}
