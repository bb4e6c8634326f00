//! The HTTP API and the WebSocket stream against a hub fed by a fake producer.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;
use trainconsole_protocol::{Event, RunStart, RunState, StateChange, Step};
use trainconsole_server::{Hub, router};

static PAGE: &[(&str, &[u8])] = &[("/index.html", b"<!doctype html><title>t</title>"), ("/assets/app.js", b"console.log(1)")];

fn step(n: u64) -> Event {
    Event::new(1000.0 + n as f64, Step { step: n, tokens: n * 64, loss: 3.0 - n as f64 * 0.001, lr: Some(1e-3), grad_norm: Some(1.0), step_time_ms: Some(10.0), ..Default::default() })
}

fn start() -> Event {
    Event::new(1000.0, RunStart { name: "test".into(), total_tokens: Some(64_000), total_steps: Some(1000), tokens_per_step: Some(64), ..Default::default() })
}

/// A hub with one live run; the returned counter counts abort requests.
async fn hub_with_run(dir: &std::path::Path) -> (Hub, String, Arc<AtomicUsize>) {
    let hub = Hub::open(dir).unwrap();
    let aborts = Arc::new(AtomicUsize::new(0));
    let counter = aborts.clone();
    let run = hub.create_run("test", "http://127.0.0.1:7437", Box::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    })).unwrap();
    let id = run.id().to_string();
    hub.append(&id, vec![start()]).await.unwrap();
    (hub, id, aborts)
}

async fn call(hub: &Hub, method: &str, uri: &str, origin: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri).header("host", "127.0.0.1:7437");
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = router(hub.clone(), PAGE).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn summary_events_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, id, _) = hub_with_run(dir.path()).await;
    let last = hub.append(&id, (1..=10).map(step).collect()).await.unwrap();
    assert_eq!(last, 11);

    let (status, runs) = call(&hub, "GET", "/api/runs", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs["runs"][0]["id"], id.as_str());

    let (status, summary) = call(&hub, "GET", &format!("/api/runs/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["tokens"], 640);
    assert_eq!(summary["step"], 10);
    assert_eq!(summary["last_seq"], 11);
    assert_eq!(summary["state"], "running");
    assert_eq!(summary["total_tokens"], 64_000);

    let (status, page) = call(&hub, "GET", &format!("/api/runs/{id}/events?after=3&limit=4"), None).await;
    assert_eq!(status, StatusCode::OK);
    let seqs: Vec<u64> = page["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![4, 5, 6, 7]);
    assert_eq!(page["events"][0]["kind"], "step");
    assert_eq!(page["events"][0]["step"], 3);
    assert_eq!(page["last_seq"], 11);

    let (status, err) = call(&hub, "GET", "/api/runs/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(err["error"].as_str().unwrap().contains("nope"), "{err}");

    let (status, err) = call(&hub, "GET", &format!("/api/runs/{id}/events?after=x"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap().contains("after"), "{err}");

    let (status, err) = call(&hub, "POST", "/api/runs/nope/abort", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");

    let (status, err) = call(&hub, "GET", &format!("/api/runs/{id}/stream"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap().starts_with("this endpoint is a WebSocket"), "{err}");

    let (status, err) = call(&hub, "DELETE", &format!("/api/runs/{id}"), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(err["error"], format!("DELETE is not allowed on /api/runs/{id}"));
}

#[tokio::test]
async fn abort_is_idempotent_and_refused_once_ended() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, id, aborts) = hub_with_run(dir.path()).await;
    let uri = format!("/api/runs/{id}/abort");

    let (status, body) = call(&hub, "POST", &uri, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["state"], "stopping");
    let (status, body) = call(&hub, "POST", &uri, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["state"], "stopping");
    assert_eq!(aborts.load(Ordering::SeqCst), 1, "the producer is asked once");
    // One `stopping` event was stored, not two.
    let (_, page) = call(&hub, "GET", &format!("/api/runs/{id}/events"), None).await;
    let states: Vec<&str> = page["events"].as_array().unwrap().iter().filter_map(|e| e["state"].as_str()).collect();
    assert_eq!(states, vec!["stopping"]);

    hub.append(&id, vec![Event::now(StateChange { state: RunState::Aborted, message: String::new() })]).await.unwrap();
    let (status, body) = call(&hub, "POST", &uri, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["state"], "aborted");
    assert!(body["error"].as_str().unwrap().contains("already ended"), "{body}");
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, id, aborts) = hub_with_run(dir.path()).await;
    let uri = format!("/api/runs/{id}/abort");
    for origin in ["http://evil.example", "null", "http://127.0.0.1:9999"] {
        let (status, _) = call(&hub, "POST", &uri, Some(origin)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "origin {origin}");
    }
    assert_eq!(aborts.load(Ordering::SeqCst), 0);
    // DNS rebinding: another site's name resolving to 127.0.0.1 is not this console.
    let request = Request::post(uri.as_str()).header("host", "evil.example:7437").header("origin", "http://evil.example:7437");
    let response = router(hub.clone(), PAGE).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = router(hub.clone(), PAGE)
        .oneshot(Request::get("/api/runs").header("host", "evil.example:7437").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(aborts.load(Ordering::SeqCst), 0);
    // Reads from any page are fine; the console's own origin may abort.
    let (status, _) = call(&hub, "GET", &format!("/api/runs/{id}"), Some("http://evil.example")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&hub, "POST", &uri, Some("http://127.0.0.1:7437")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(aborts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn page_routes_serve_the_embedded_index() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, id, _) = hub_with_run(dir.path()).await;
    for uri in ["/".to_string(), format!("/runs/{id}")] {
        let response = router(hub.clone(), PAGE).oneshot(Request::get(uri.as_str()).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        assert_eq!(response.headers()["content-type"], "text/html");
    }
    let response = router(hub.clone(), PAGE).oneshot(Request::get("/assets/app.js").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/javascript");
    let (status, _) = call(&hub, "GET", "/api/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn past_runs_without_an_end_show_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let (hub, id, _) = hub_with_run(dir.path()).await;
        hub.append(&id, (1..=3).map(step).collect()).await.unwrap();
        // The producer goes away without reporting an end (as a killed process would).
        hub.detach_producer(&id);
        id
    };
    let hub = Hub::open(dir.path()).unwrap();
    let (_, summary) = call(&hub, "GET", &format!("/api/runs/{id}"), None).await;
    assert_eq!(summary["state"], "interrupted");
    assert_eq!(summary["step"], 3);
    let (status, body) = call(&hub, "POST", &format!("/api/runs/{id}/abort"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

// ---- WebSocket stream -------------------------------------------------------------------

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(hub: &Hub) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(hub.clone(), PAGE);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("127.0.0.1:{}", addr.port())
}

async fn connect(addr: &str, id: &str, after: u64) -> Socket {
    let url = format!("ws://{addr}/api/runs/{id}/stream?after={after}");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Read messages until `want` seq has been seen (or 10 s pass); returns every seq received.
async fn read_until(socket: &mut Socket, want: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seqs.last().copied().unwrap_or(0) < want {
        let message = tokio::time::timeout_at(deadline, socket.next()).await.expect("timed out waiting for events");
        let Some(Ok(Message::Text(text))) = message else { continue };
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], "events");
        assert!(value["summary"]["last_seq"].as_u64().is_some());
        seqs.extend(value["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()));
    }
    seqs
}

#[tokio::test]
async fn late_and_reconnecting_viewers_get_every_seq_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, id, _) = hub_with_run(dir.path()).await;
    let addr = serve(&hub).await;
    // 50 events before anyone connects (seq 1 is run_start).
    let mut publisher = hub.publisher(&id);
    for n in 1..=49 {
        publisher.publish(step(n));
    }
    let producer_hub = hub.clone();
    let producer_id = id.clone();
    let producer = tokio::spawn(async move {
        // Then 400 more while viewers watch, in small bursts.
        for chunk in (50..=449).collect::<Vec<u64>>().chunks(7) {
            producer_hub.append(&producer_id, chunk.iter().map(|&n| step(n)).collect()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });

    // A viewer that connects after 50 events and stays.
    let mut late = connect(&addr, &id, 0).await;
    // A viewer that leaves mid-run and reconnects from its last seq.
    let mut first = connect(&addr, &id, 0).await;
    let mut got = read_until(&mut first, 120).await;
    first.close(None).await.unwrap();
    let resume_from = *got.last().unwrap();
    let mut second = connect(&addr, &id, resume_from).await;
    got.extend(read_until(&mut second, 450).await);

    let late_got = read_until(&mut late, 450).await;
    producer.await.unwrap();
    let all: Vec<u64> = (1..=450).collect();
    assert_eq!(late_got, all, "late viewer");
    assert_eq!(got, all, "reconnecting viewer");
}

#[tokio::test]
async fn a_viewer_that_reads_nothing_while_many_batches_flow_still_gets_every_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, id, _) = hub_with_run(dir.path()).await;
    let addr = serve(&hub).await;
    let mut viewer = connect(&addr, &id, 0).await;
    assert_eq!(read_until(&mut viewer, 1).await, vec![1]);
    // Far more batches than the live broadcast holds, while the viewer does not read.
    let batches = trainconsole_server::hub::LIVE_BROADCAST_BATCHES as u64 * 3;
    for n in 1..=batches {
        hub.append(&id, vec![step(n)]).await.unwrap();
    }
    let got = read_until(&mut viewer, batches + 1).await;
    assert_eq!(got, (2..=batches + 1).collect::<Vec<_>>());
}

#[tokio::test]
async fn cross_origin_websocket_upgrade_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, id, _) = hub_with_run(dir.path()).await;
    let addr = serve(&hub).await;
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{addr}/api/runs/{id}/stream")).unwrap();
    request.headers_mut().insert("origin", "http://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(request).await.expect_err("upgrade must be refused");
    assert!(err.to_string().contains("403"), "{err}");
}

#[tokio::test]
async fn shutdown_says_bye_after_the_last_events() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, id, _) = hub_with_run(dir.path()).await;
    let addr = serve(&hub).await;
    let mut viewer = connect(&addr, &id, 0).await;
    assert_eq!(read_until(&mut viewer, 1).await, vec![1]);
    hub.append(&id, vec![Event::now(StateChange { state: RunState::Completed, message: String::new() })]).await.unwrap();
    hub.shut_down();
    assert!(hub.wait_for_viewers(Duration::from_secs(5)).await, "the viewer closed after its last message");
    let mut kinds = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), viewer.next()).await {
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            kinds.push(value["type"].as_str().unwrap().to_string());
            if value["type"] == "events" {
                assert_eq!(value["events"][0]["state"], "completed");
            }
        }
    }
    assert_eq!(kinds, vec!["events", "bye"]);
}

#[tokio::test]
async fn a_run_trained_by_another_process_is_followed_live_not_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    // `producer` stands for `trainconsole train`, `viewer` for `trainconsole serve` on the same
    // runs directory (the producer lock works between open files as between processes).
    let (producer, id, aborts) = hub_with_run(dir.path()).await;
    producer.append(&id, (1..=3).map(step).collect()).await.unwrap();
    let viewer = Hub::open(dir.path()).unwrap();
    let (_, summary) = call(&viewer, "GET", &format!("/api/runs/{id}"), None).await;
    assert_eq!(summary["state"], "running");
    assert_eq!(summary["step"], 3);

    producer.append(&id, (4..=6).map(step).collect()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, summary) = call(&viewer, "GET", &format!("/api/runs/{id}"), None).await;
        if summary["step"] == 6 {
            assert_eq!(summary["last_seq"], 7);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the viewer did not follow: {summary}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, body) = call(&viewer, "POST", &format!("/api/runs/{id}/abort"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains("http://127.0.0.1:7437"), "names the other console: {body}");
    assert_eq!(aborts.load(Ordering::SeqCst), 0);

    // A page already open on the viewer is told when the run becomes interrupted.
    let addr = serve(&viewer).await;
    let mut page = connect(&addr, &id, 0).await;
    assert_eq!(read_until(&mut page, 7).await.len(), 7);

    // The producer stops without an end state: the viewer then calls the run interrupted.
    producer.detach_producer(&id);
    assert!(!dir.path().join(&id).join("producer.lock").exists(), "the lock file is removed");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let message = tokio::time::timeout_at(deadline, page.next()).await.expect("no interrupted summary pushed");
        let Some(Ok(Message::Text(text))) = message else { continue };
        let value: Value = serde_json::from_str(&text).unwrap();
        if value["summary"]["state"] == "interrupted" {
            assert_eq!(value["events"].as_array().unwrap().len(), 0);
            break;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, summary) = call(&viewer, "GET", &format!("/api/runs/{id}"), None).await;
        if summary["state"] == "interrupted" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {summary}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
