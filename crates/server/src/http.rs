//! The HTTP API and WebSocket stream (see docs/api.md), and the embedded page.

use crate::hub::{Hub, HubError, IngestAnswer, Refusal, RunEntry};
use crate::ingest::{self, MAX_INGEST_BODY_BYTES};
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use trainconsole_protocol::{RunState, RunSummary, StoredEvent};

/// Default `limit` of `GET /api/runs/{id}/events`.
pub const DEFAULT_EVENTS_LIMIT: usize = 1000;
/// Largest `limit` of `GET /api/runs/{id}/events`.
pub const MAX_EVENTS_LIMIT: usize = 10_000;
/// Most events in one stream message.
pub const MAX_STREAM_BATCH_EVENTS: usize = 2000;
/// Shortest interval between two live stream messages to one viewer.
pub const STREAM_BATCH_INTERVAL: Duration = Duration::from_millis(50);
/// A viewer whose socket does not take a message within this time is closed.
pub const STREAM_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The server pings each viewer this often, which also keeps proxies from closing quiet sockets.
pub const STREAM_PING_INTERVAL: Duration = Duration::from_secs(20);

/// A body larger than [`MAX_INGEST_BODY_BYTES`] is still read (and thrown away) up to this
/// size before the 413 answer, so that a client still sending gets the answer rather than a
/// reset connection; a larger one is answered at once.
pub const MAX_DRAINED_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Longest `Idempotency-Key` accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;

/// Content-Security-Policy of the page: its own scripts and styles only, no inline script,
/// no framing by other sites.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Files of the built web page: `(path, bytes)`, e.g. `("/index.html", …)`, `("/assets/app.js", …)`.
pub type Assets = &'static [(&'static str, &'static [u8])];

#[derive(Clone)]
struct AppState {
    hub: Hub,
    assets: Assets,
}

/// Which `Host` headers the console answers: a page on another site whose name resolves to
/// 127.0.0.1 (DNS rebinding) sends its own name as `Host`, and is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Loopback names only: `127.0.0.1`, `localhost` and `[::1]`, on any port.
    Loopback,
    /// Any name: the server was bound to a non-loopback address on purpose.
    Any,
}

impl AllowedHosts {
    /// The policy for a server bound to `addr`.
    pub fn for_bind_address(addr: std::net::SocketAddr) -> Self {
        if addr.ip().is_loopback() { AllowedHosts::Loopback } else { AllowedHosts::Any }
    }
}

/// The console's router: API, stream and page, answering only loopback `Host` names.
pub fn router(hub: Hub, assets: Assets) -> Router {
    router_for_hosts(hub, assets, AllowedHosts::Loopback)
}

/// The console's router, answering the `Host` names `hosts` allows.
pub fn router_for_hosts(hub: Hub, assets: Assets, hosts: AllowedHosts) -> Router {
    Router::new()
        .route("/api/runs", get(list_runs).post(create_run))
        .route("/api/runs/{id}", get(get_run))
        .route("/api/runs/{id}/events", get(get_events).post(post_events))
        .route("/api/runs/{id}/stream", get(stream))
        .route("/api/runs/{id}/abort", post(abort))
        .route("/api/runs/{id}/kill", post(kill))
        .fallback(page)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(same_origin_only))
        .layer(middleware::from_fn_with_state(hosts, known_host_only))
        .with_state(AppState { hub, assets })
}

/// Refuse (403) a request whose `Host` is not one of this console's names, before any handler.
async fn known_host_only(State(hosts): State<AllowedHosts>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).map(|host| host.to_str().unwrap_or(""));
    if let (AllowedHosts::Loopback, Some(host)) = (hosts, host)
        && !is_loopback_host(host)
    {
        let message = format!("Host {host:?} is not this console's address; open it as http://127.0.0.1:PORT");
        return ApiError::new(StatusCode::FORBIDDEN, message).into_response();
    }
    next.run(request).await
}

/// `127.0.0.1`, `localhost` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| if port.chars().all(|c| c.is_ascii_digit()) { name } else { host }),
    };
    matches!(name.to_ascii_lowercase().as_str(), "127.0.0.1" | "localhost" | "::1")
}

/// An API error: a status and `{"error": message}` (plus `state` where it helps).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    state: Option<RunState>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), state: None }
    }
}

impl From<HubError> for ApiError {
    fn from(err: HubError) -> Self {
        match &err {
            HubError::UnknownRun(_) => ApiError::new(StatusCode::NOT_FOUND, err.to_string()),
            HubError::Finished { state, .. } | HubError::NoProducer { state, .. } => {
                ApiError { status: StatusCode::CONFLICT, message: err.to_string(), state: Some(*state) }
            }
            HubError::OtherProcess { .. } | HubError::NotKillable(_) | HubError::KillTooEarly { .. } => {
                ApiError::new(StatusCode::CONFLICT, err.to_string())
            }
            HubError::MissingToken(_) => ApiError::new(StatusCode::UNAUTHORIZED, err.to_string()),
            HubError::WrongToken(_) | HubError::NotExternal(_) => ApiError::new(StatusCode::FORBIDDEN, err.to_string()),
            HubError::Store(_) | HubError::WriteFailed(_) | HubError::WriterGone => {
                tracing::error!("{err}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
            }
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        HubError::from(err).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            state: Option<RunState>,
        }
        let mut response = (self.status, Json(Body { error: self.message, state: self.state })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Refuse state-changing requests and WebSocket upgrades from another origin (403).
async fn same_origin_only(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD);
    let is_upgrade = headers.get(header::UPGRADE).is_some();
    if (changes_state || is_upgrade) && !origin_allowed(headers) {
        return ApiError::new(StatusCode::FORBIDDEN, "cross-origin request refused: the Origin header is not this console's address")
            .into_response();
    }
    next.run(request).await
}

/// A request without `Origin` comes from a script, not a browser page, and is let through;
/// one with `Origin` must name this console's own `http://HOST` exactly.
fn origin_allowed(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), headers.get(header::HOST).map(HeaderValue::to_str)) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

#[derive(Serialize)]
struct RunList {
    runs: Vec<RunSummary>,
}

async fn list_runs(State(app): State<AppState>) -> Result<Json<RunList>, ApiError> {
    let hub = app.hub.clone();
    let runs = blocking(move || hub.list()).await?;
    Ok(Json(RunList { runs }))
}

async fn get_run(State(app): State<AppState>, Path(id): Path<String>) -> Result<Json<RunSummary>, ApiError> {
    let entry = run_entry(&app.hub, id).await?;
    Ok(Json(entry.summary()))
}

#[derive(Serialize)]
struct EventPage {
    events: Vec<StoredEvent>,
    last_seq: u64,
}

async fn get_events(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<EventPage>, ApiError> {
    let after = query_number(&query, "after", 0)?;
    let limit = query_number(&query, "limit", DEFAULT_EVENTS_LIMIT as u64)?.min(MAX_EVENTS_LIMIT as u64) as usize;
    let entry = run_entry(&app.hub, id).await?;
    let events = read_events(&app.hub, &entry, after, limit).await?;
    Ok(Json(EventPage { events, last_seq: entry.summary().last_seq }))
}

fn query_number(query: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("query parameter {name}={text:?} is not a non-negative integer"))
        }),
    }
}

#[derive(Serialize)]
struct AbortAnswer {
    state: RunState,
}

async fn abort(State(app): State<AppState>, Path(id): Path<String>) -> Result<(StatusCode, Json<AbortAnswer>), ApiError> {
    let state = app.hub.abort(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(AbortAnswer { state })))
}

#[derive(Serialize)]
struct CreatedRun {
    id: String,
    /// The run's write token: `Authorization: Bearer TOKEN` on its posts.
    token: String,
    /// The run's console page.
    url: String,
}

/// `POST /api/runs`: create a run reported by an external trainer.
async fn create_run(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<(StatusCode, Json<CreatedRun>), ApiError> {
    let bytes = read_body(body, &headers).await?;
    let text = std::str::from_utf8(&bytes).map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, format!("the body is not UTF-8: {err}")))?;
    let new_run = ingest::parse_new_run(text).map_err(|problem| ApiError::new(StatusCode::BAD_REQUEST, problem))?;
    let (entry, token) = app.hub.create_external_run(new_run.start, new_run.time, new_run.force_kill_grace_secs, None).await?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let id = entry.id().to_string();
    Ok((StatusCode::CREATED, Json(CreatedRun { url: format!("http://{host}/runs/{id}"), id, token })))
}

/// A failed post: the error, where it is, and what the trainer should know anyway.
#[derive(Serialize)]
struct IngestError {
    error: String,
    /// 1-based line of the body.
    line: usize,
    /// 1-based column of a JSON syntax error.
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<usize>,
    /// 0-based index of the element, for a body that is a JSON array.
    #[serde(skip_serializing_if = "Option::is_none")]
    element: Option<usize>,
    #[serde(flatten)]
    answer: IngestAnswer,
}

/// `POST /api/runs/{id}/events`: store a batch posted by an external trainer.
async fn post_events(State(app): State<AppState>, Path(id): Path<String>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(|token| token.trim().to_string());
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => match value.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_BYTES => Some(key.to_string()),
            _ => {
                let message = format!("the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters");
                return Err(ApiError::new(StatusCode::BAD_REQUEST, message));
            }
        },
    };
    let hub = app.hub.clone();
    let entry = blocking(move || hub.authorize(&id, token.as_deref())).await?;
    let bytes = read_body(body, &headers).await?;
    let (text, utf8_error) = match std::str::from_utf8(&bytes) {
        Ok(text) => (text, None),
        Err(err) => {
            // Read the whole lines before the first invalid byte, and name its line.
            let valid = &bytes[..err.valid_up_to()];
            let cut = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = err.valid_up_to() - cut + 1;
            let problem = format!("not UTF-8 (byte {} of the body)", err.valid_up_to());
            let error = ingest::LineError { line, column: Some(column), element: None, problem };
            (std::str::from_utf8(&bytes[..cut]).unwrap_or(""), Some(error))
        }
    };
    let batch = ingest::parse_batch(text);
    // The first problem in the body is the one named.
    let error = match (batch.error, utf8_error) {
        (Some(parse), Some(utf8)) if parse.line < utf8.line => Some(parse),
        (_, Some(utf8)) => Some(utf8),
        (parse, None) => parse,
    };
    let positions = batch.positions;
    let (answer, refused) = app.hub.ingest(&entry, batch.events, key).await?;
    // An event the run does not take comes before any parse error (which follows every
    // parsed event).
    let (status, error) = match (refused, error) {
        (Some(refused), _) => {
            let status = match refused.reason {
                Refusal::Ended { .. } => StatusCode::CONFLICT,
                Refusal::ConsoleOwned { .. } => StatusCode::BAD_REQUEST,
            };
            let position = positions.get(refused.index).copied().unwrap_or(ingest::Position { line: 1, element: None });
            (status, Some(ingest::LineError::at(position, refused.reason.to_string())))
        }
        (None, error) => (StatusCode::BAD_REQUEST, error),
    };
    Ok(match error {
        None => Json(answer).into_response(),
        Some(error) => {
            let body = IngestError { error: error.to_string(), line: error.line, column: error.column, element: error.element, answer };
            (status, Json(body)).into_response()
        }
    })
}

/// Read a request body of at most [`MAX_INGEST_BODY_BYTES`]; 413 for a larger one.
async fn read_body(body: Body, headers: &HeaderMap) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        let message = format!("the body is larger than {} MiB; post the events in smaller batches", MAX_INGEST_BODY_BYTES / (1024 * 1024));
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_DRAINED_BODY_BYTES) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let (mut bytes, mut total) = (Vec::new(), 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, format!("reading the body failed: {err}")))?;
        total += chunk.len();
        if total <= MAX_INGEST_BODY_BYTES {
            bytes.extend_from_slice(&chunk);
        } else if total > MAX_DRAINED_BODY_BYTES {
            break;
        }
    }
    if total > MAX_INGEST_BODY_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// `POST /api/runs/{id}/kill`: force-kill the process of a run that did not stop.
async fn kill(State(app): State<AppState>, Path(id): Path<String>) -> Result<(StatusCode, Json<AbortAnswer>), ApiError> {
    let hub = app.hub.clone();
    let state = blocking(move || hub.kill(&id)).await?;
    Ok((StatusCode::ACCEPTED, Json(AbortAnswer { state })))
}

async fn run_entry(hub: &Hub, id: String) -> Result<Arc<RunEntry>, ApiError> {
    let hub = hub.clone();
    blocking(move || hub.run(&id)).await
}

async fn read_events(hub: &Hub, entry: &RunEntry, after: u64, limit: usize) -> Result<Vec<StoredEvent>, ApiError> {
    let (hub, id) = (hub.clone(), entry.id().to_string());
    blocking(move || hub.read(|store| store.events_after(&id, after, limit)).map_err(HubError::from)).await
}

/// Run blocking store work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, HubError> + Send + 'static) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(err) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("store task failed: {err}"))),
    }
}

async fn stream(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(rejection.status(), format!("this endpoint is a WebSocket: {}", rejection.body_text()))
    })?;
    let after = query_number(&query, "after", 0)?;
    let entry = run_entry(&app.hub, id).await?;
    let hub = app.hub.clone();
    let guard = hub.viewer_guard();
    Ok(upgrade.on_upgrade(move |socket| async move {
        let _counted = guard;
        let mut viewer = Viewer { socket, hub, entry, last_seq: after };
        if let Err(reason) = viewer.run().await {
            tracing::debug!("viewer of run {} closed: {reason}", viewer.entry.id());
        }
    }))
}

/// One WebSocket viewer of one run.
struct Viewer {
    socket: WebSocket,
    hub: Hub,
    entry: Arc<RunEntry>,
    /// The highest seq this viewer has been sent (or was given as `after`).
    last_seq: u64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamMessage<'a> {
    Events { events: &'a [StoredEvent], summary: Box<RunSummary> },
    Bye { reason: &'a str },
}

impl Viewer {
    async fn run(&mut self) -> Result<(), String> {
        // Subscribe before reading the store: whatever is stored after the read arrives here.
        let mut live = self.entry.subscribe();
        let mut shutdown = self.hub.shutdown_signal();
        self.catch_up(true).await?;
        let mut ping = tokio::time::interval(STREAM_PING_INTERVAL);
        ping.tick().await;
        let mut last_send = Instant::now();
        loop {
            tokio::select! {
                received = live.recv() => {
                    let mut pending: Vec<StoredEvent> = Vec::new();
                    let mut lagged = false;
                    // An empty batch announces a summary change without a new event.
                    let mut summary_changed = false;
                    match received {
                        Ok(batch) => {
                            summary_changed |= batch.is_empty();
                            pending.extend(batch.iter().cloned());
                        }
                        Err(RecvError::Lagged(_)) => lagged = true,
                        Err(RecvError::Closed) => return self.bye("run closed").await,
                    }
                    // Batch on a short timer: one message per interval however many arrive.
                    tokio::time::sleep_until(last_send + STREAM_BATCH_INTERVAL).await;
                    loop {
                        match live.try_recv() {
                            Ok(batch) => {
                                summary_changed |= batch.is_empty();
                                pending.extend(batch.iter().cloned());
                            }
                            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                            Err(_) => break,
                        }
                    }
                    pending.retain(|e| e.seq > self.last_seq);
                    let contiguous = pending.first().is_none_or(|e| e.seq == self.last_seq + 1);
                    if lagged || !contiguous {
                        // Fell behind the broadcast: resync from the store, never skip ahead.
                        self.catch_up(false).await?;
                    } else if !pending.is_empty() || summary_changed {
                        self.send_events(&pending).await?;
                    }
                    last_send = Instant::now();
                }
                incoming = self.socket.recv() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Ok(_)) => {}
                },
                _ = ping.tick() => self.send(Message::Ping(Vec::new().into())).await?,
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        // Deliver what is stored, then say goodbye.
                        self.catch_up(false).await?;
                        return self.bye("the console server is exiting").await;
                    }
                }
            }
        }
    }

    /// Send every stored event after `last_seq`, in pages; with `always`, send one (possibly
    /// empty) message even when there is nothing new, so the viewer gets the summary at once.
    async fn catch_up(&mut self, always: bool) -> Result<(), String> {
        let mut sent = false;
        loop {
            let events = read_events(&self.hub, &self.entry, self.last_seq, MAX_STREAM_BATCH_EVENTS)
                .await
                .map_err(|err| err.message)?;
            if events.is_empty() {
                break;
            }
            self.send_events(&events).await?;
            sent = true;
        }
        if always && !sent {
            self.send_events(&[]).await?;
        }
        Ok(())
    }

    async fn send_events(&mut self, events: &[StoredEvent]) -> Result<(), String> {
        for chunk in events.chunks(MAX_STREAM_BATCH_EVENTS).chain(events.is_empty().then_some(&[][..])) {
            let message = StreamMessage::Events { events: chunk, summary: Box::new(self.entry.summary()) };
            let text = serde_json::to_string(&message).map_err(|err| err.to_string())?;
            self.send(Message::Text(text.into())).await?;
            if let Some(last) = chunk.last() {
                self.last_seq = last.seq;
            }
        }
        Ok(())
    }

    async fn bye(&mut self, reason: &str) -> Result<(), String> {
        let text = serde_json::to_string(&StreamMessage::Bye { reason }).map_err(|err| err.to_string())?;
        self.send(Message::Text(text.into())).await?;
        let frame = CloseFrame { code: axum::extract::ws::close_code::AWAY, reason: reason.to_string().into() };
        self.send(Message::Close(Some(frame))).await
    }

    async fn send(&mut self, message: Message) -> Result<(), String> {
        match tokio::time::timeout(STREAM_SEND_TIMEOUT, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("viewer took no message for {STREAM_SEND_TIMEOUT:?}")),
        }
    }
}

async fn method_not_allowed(request: Request) -> ApiError {
    let message = format!("{} is not allowed on {}", request.method(), request.uri().path());
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, message)
}

/// Serve the embedded page: a file by path, else `index.html` for the page's own routes.
async fn page(State(app): State<AppState>, request: Request) -> Response {
    let path = request.uri().path();
    if path.starts_with("/api/") {
        return ApiError::new(StatusCode::NOT_FOUND, format!("no API endpoint {path}")).into_response();
    }
    let file = app.assets.iter().find(|(name, _)| *name == path);
    let (name, bytes) = match file {
        Some(found) => *found,
        None if path == "/" || path.starts_with("/runs/") => {
            match app.assets.iter().find(|(name, _)| *name == "/index.html") {
                Some(index) => *index,
                None => return (StatusCode::NOT_FOUND, "the web page was not built into this binary").into_response(),
            }
        }
        None => return (StatusCode::NOT_FOUND, format!("no such page: {path}")).into_response(),
    };
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let cache = if name.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    (
        [
            (header::CONTENT_TYPE, mime.as_ref().to_string()),
            (header::CACHE_CONTROL, cache.to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP.to_string()),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_host_names() {
        for host in ["127.0.0.1", "127.0.0.1:7437", "localhost:80", "LOCALHOST", "[::1]:7437", "[::1]"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example:7437", "127.0.0.1.evil.example", "localhost.evil:1", "10.0.0.1:7437", "", "[::2]:1"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
