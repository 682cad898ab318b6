//! The HTTP inference server (`dlp serve`), on axum and tokio.
//!
//! Endpoints (the Open Inference Protocol, KServe V2, as Triton and KServe implement it, plus a
//! raw-record endpoint and metrics):
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v2/health/live` | the process is up |
//! | `GET /v2/health/ready` | every model has a version loaded (503 otherwise) |
//! | `GET /v2` | server metadata |
//! | `GET /v2/models/{name}[/versions/{v}]` | model metadata: inputs, outputs, shapes, datatypes |
//! | `GET /v2/models/{name}[/versions/{v}]/ready` | model readiness |
//! | `POST /v2/models/{name}[/versions/{v}]/infer` | inference on JSON tensors ([`records`](crate::records)) |
//! | `POST /v1/models/{name}[/versions/{v}]/predict` | raw records → labels and probabilities |
//! | `GET /v1/models/{name}[/versions/{v}]/drift` | drift of recent requests against the training data ([`drift`](crate::drift)) |
//! | `POST /v2/repository/index` | every model version: served, or refused and why |
//! | `GET /metrics` | Prometheus metrics ([`metrics`](crate::metrics)) |
//!
//! Every failure is a JSON body `{"error": "…"}` with a 4xx status for the client's mistakes
//! (400 bad input, 401 missing or wrong token, 404 unknown model, version or route, 405, 408
//! body not sent in time, 413 body too large), 422 when the model's output for a record is not
//! finite, 503 when overloaded, not ready or past the per-request timeout. Hygiene: binds where
//! told (the CLI defaults to 127.0.0.1), optional bearer token (scheme case-insensitive) on
//! everything but the health checks, a header-read timeout that also closes idle keep-alive
//! connections, a body-read timeout, graceful shutdown that finishes in-flight requests.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path as UrlPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use candle_core::Device;
use pipeline_core::Predictions;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::batcher::{BatchConfig, BatchError};
use crate::drift::DriftOptions;
use crate::metrics::Metrics;
use crate::observe::{Observation, ObserverFactory};
use crate::predlog::{PredictionLog, PredictionLogOptions};
use crate::records::{self, RequestError};
use crate::repository::{Event, LoadContext, LoadedModel, Registry};

/// How the server behaves.
#[derive(Clone)]
pub struct ServeOptions {
    /// Dynamic batching.
    pub batch: BatchConfig,
    /// Largest request body accepted, in bytes (larger: 413).
    pub body_limit: usize,
    /// Longest a request may take once its body has arrived (longer: 503).
    pub timeout: Duration,
    /// Longest a client may take to send a request's headers, and longest an idle keep-alive
    /// connection is kept open: a slow or silent client cannot hold a connection.
    pub header_timeout: Duration,
    /// Longest a request's body may take to arrive (longer, or shorter than its
    /// `Content-Length`: 408).
    pub body_timeout: Duration,
    /// When set, requests other than health checks need `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// How often a repository is checked for new versions.
    pub poll: Duration,
    /// Per-request hooks, made for each loaded model version.
    pub observers: Vec<ObserverFactory>,
    /// Drift monitoring of each version whose bundle has reference statistics (`None`: off).
    pub drift: Option<DriftOptions>,
    /// Logging every prediction to a JSON-lines file (`None`: off).
    pub prediction_log: Option<PredictionLogOptions>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            batch: BatchConfig::default(),
            body_limit: 8 << 20,
            timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            token: None,
            poll: Duration::from_secs(2),
            observers: Vec::new(),
            drift: Some(DriftOptions::default()),
            prediction_log: None,
        }
    }
}

/// What went wrong starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Nothing could be loaded.
    #[error(transparent)]
    Load(#[from] crate::repository::OpenError),
    /// The address could not be bound, or the runtime not started.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        cause: std::io::Error,
    },
}

/// The state every handler shares.
pub struct AppState {
    /// The models.
    pub registry: Arc<Registry>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    token: Option<String>,
    timeout: Duration,
    header_timeout: Duration,
    body_timeout: Duration,
    body_limit: usize,
}

fn respond(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{\"error\":\"cannot encode the response\"}".to_vec());
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    respond(status, &json!({ "error": message.into() }))
}

impl From<RequestError> for Response {
    fn from(e: RequestError) -> Self {
        error(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), e.message)
    }
}

/// The router with every endpoint and the request guard (auth, timeout, metrics).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v2/health/live", get(|| async { respond(StatusCode::OK, &json!({ "live": true })) }))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(metadata))
        .route("/v2/models/{name}/versions/{version}", get(metadata_version))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_ready_version))
        .route("/v2/models/stats", get(all_stats))
        .route("/v2/models/{name}/stats", get(stats))
        .route("/v2/models/{name}/versions/{version}/stats", get(stats_version))
        .route("/v2/models/{name}/config", get(config))
        .route("/v2/models/{name}/versions/{version}/config", get(config_version))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_version))
        .route("/v1/models/{name}/predict", post(predict))
        .route("/v1/models/{name}/versions/{version}/predict", post(predict_version))
        .route("/v1/models/{name}/drift", get(drift))
        .route("/v1/models/{name}/versions/{version}/drift", get(drift_version))
        .route("/v2/repository/index", post(repository_index))
        .route("/metrics", get(metrics))
        .fallback(|req: Request| async move { error(StatusCode::NOT_FOUND, format!("no route {}", req.uri().path())) })
        .method_not_allowed_fallback(|req: Request| async move {
            error(StatusCode::METHOD_NOT_ALLOWED, format!("{} is not allowed on {}", req.method(), req.uri().path()))
        })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(state.body_limit))
        .with_state(state)
}

/// Authentication, the per-request timeout, and request metrics, around every handler.
async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let endpoint = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let public = endpoint.starts_with("/v2/health/");
    let authorized = match (&st.token, public) {
        (Some(token), false) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes())),
        _ => true,
    };
    let resp = if !authorized {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (Authorization: Bearer <token>)");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    } else {
        match read_body(&st, req).await {
            Err(e) => error(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), e.message),
            Ok(req) => match tokio::time::timeout(st.timeout, next.run(req)).await {
                Ok(r) => r,
                Err(_) => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the request took longer than the server's timeout of {} ms", st.timeout.as_millis()),
                ),
            },
        }
    };
    st.metrics.request(&endpoint, resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}

/// The token of an `Authorization` value in the `Bearer` scheme, whose name is
/// case-insensitive (RFC 7235 §2.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Reads the whole body (at most the body limit: 413) within the body timeout (408: a client
/// that stops sending, or sends less than its `Content-Length`, gets an answer and its
/// connection back), so the handlers' time limit covers only the work.
async fn read_body(st: &AppState, req: Request) -> Result<Request, RequestError> {
    use http_body_util::BodyExt;
    let too_large =
        || RequestError { status: 413, message: format!("the request body is larger than {} bytes", st.body_limit) };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.body_limit as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, st.body_limit);
    match tokio::time::timeout(st.body_timeout, limited.collect()).await {
        Err(_) => Err(RequestError {
            status: 408,
            message: format!(
                "the request body did not arrive within {} ms{}",
                st.body_timeout.as_millis(),
                declared.map_or(String::new(), |n| format!(" (Content-Length says {n} bytes)"))
            ),
        }),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(RequestError { status: 400, message: format!("cannot read the request body: {e}") }),
        Ok(Ok(collected)) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn ready(State(st): State<Arc<AppState>>) -> Response {
    let ready = st.registry.ready();
    respond(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &json!({ "ready": ready }))
}

async fn server_metadata() -> Response {
    respond(
        StatusCode::OK,
        &json!({
            "name": "dlp",
            "version": env!("CARGO_PKG_VERSION"),
            "extensions": ["model_repository", "model_configuration", "statistics"],
        }),
    )
}

/// The model `name` at `version` (the served one when `None`).
fn resolve(st: &AppState, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, RequestError> {
    let Some(slot) = st.registry.get(name) else {
        let names: Vec<String> = st.registry.slots().iter().map(|s| format!("`{}`", s.name)).collect();
        return Err(RequestError::not_found(format!(
            "unknown model `{name}`: this server serves {}",
            names.join(", ")
        )));
    };
    let Some(model) = slot.current() else {
        return Err(RequestError { status: 503, message: format!("model `{name}` has no version loaded yet") });
    };
    if let Some(v) = version {
        let Ok(v) = v.parse::<u64>() else {
            return Err(RequestError::bad(format!("version `{v}` is not a number")));
        };
        if v != model.version {
            let why = slot
                .refused()
                .into_iter()
                .find(|r| r.version == v)
                .map(|r| format!(" (it was refused: {})", r.reason))
                .unwrap_or_default();
            return Err(RequestError::not_found(format!(
                "model `{name}` version {v} is not loaded{why}: version {} is served",
                model.version
            )));
        }
    }
    Ok(model)
}

fn metadata_of(model: &LoadedModel) -> Response {
    respond(
        StatusCode::OK,
        &json!({
            "name": model.name,
            "versions": [model.version.to_string()],
            "platform": "dlp_candle",
            "inputs": model.inputs,
            "outputs": model.outputs,
        }),
    )
}

async fn metadata(State(st): State<Arc<AppState>>, UrlPath(name): UrlPath<String>) -> Response {
    resolve(&st, &name, None).map_or_else(Response::from, |m| metadata_of(&m))
}

async fn metadata_version(
    State(st): State<Arc<AppState>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Response {
    resolve(&st, &name, Some(&version)).map_or_else(Response::from, |m| metadata_of(&m))
}

/// Triton's model configuration of `model`: its inputs and outputs without the batch dimension,
/// `max_batch_size` and dynamic batching as the server batches.
fn config_of(model: &LoadedModel) -> Response {
    let tensor = |t: &records::TensorSpec| {
        let data_type = match t.datatype.as_str() {
            "BYTES" => "TYPE_STRING".to_string(),
            other => format!("TYPE_{other}"),
        };
        json!({"name": t.name, "data_type": data_type, "dims": t.shape.iter().skip(1).collect::<Vec<_>>()})
    };
    respond(
        StatusCode::OK,
        &json!({
            "name": model.name,
            "platform": "dlp_candle",
            "backend": "dlp",
            "max_batch_size": model.batch.max_batch,
            "input": model.inputs.iter().map(tensor).collect::<Vec<_>>(),
            "output": model.outputs.iter().map(tensor).collect::<Vec<_>>(),
            "version_policy": {"latest": {"num_versions": 1}},
            "dynamic_batching": {
                "max_queue_delay_microseconds": u64::try_from(model.batch.window.as_micros()).unwrap_or(u64::MAX),
            },
        }),
    )
}

async fn config(State(st): State<Arc<AppState>>, UrlPath(name): UrlPath<String>) -> Response {
    resolve(&st, &name, None).map_or_else(Response::from, |m| config_of(&m))
}

async fn config_version(
    State(st): State<Arc<AppState>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Response {
    resolve(&st, &name, Some(&version)).map_or_else(Response::from, |m| config_of(&m))
}

async fn stats(State(st): State<Arc<AppState>>, UrlPath(name): UrlPath<String>) -> Response {
    resolve(&st, &name, None).map_or_else(Response::from, |m| {
        respond(StatusCode::OK, &json!({"model_stats": [m.stats.json(&m.name, m.version)]}))
    })
}

async fn stats_version(
    State(st): State<Arc<AppState>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Response {
    resolve(&st, &name, Some(&version)).map_or_else(Response::from, |m| {
        respond(StatusCode::OK, &json!({"model_stats": [m.stats.json(&m.name, m.version)]}))
    })
}

/// Every served model's statistics.
async fn all_stats(State(st): State<Arc<AppState>>) -> Response {
    let all: Vec<Value> =
        st.registry.slots().iter().filter_map(|s| s.current()).map(|m| m.stats.json(&m.name, m.version)).collect();
    respond(StatusCode::OK, &json!({ "model_stats": all }))
}

async fn model_ready(State(st): State<Arc<AppState>>, UrlPath(name): UrlPath<String>) -> Response {
    resolve(&st, &name, None)
        .map_or_else(Response::from, |m| respond(StatusCode::OK, &json!({ "name": m.name, "ready": true })))
}

async fn model_ready_version(
    State(st): State<Arc<AppState>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Response {
    resolve(&st, &name, Some(&version))
        .map_or_else(Response::from, |m| respond(StatusCode::OK, &json!({ "name": m.name, "ready": true })))
}

async fn repository_index(State(st): State<Arc<AppState>>) -> Response {
    let mut out = Vec::new();
    for slot in st.registry.slots() {
        if let Some(m) = slot.current() {
            out.push(json!({ "name": slot.name, "version": m.version.to_string(), "state": "READY", "reason": "" }));
        }
        for r in slot.refused() {
            out.push(json!({
                "name": slot.name, "version": r.version.to_string(), "state": "UNAVAILABLE", "reason": r.reason
            }));
        }
    }
    respond(StatusCode::OK, &out)
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let mut r = Response::new(Body::from(st.metrics.render()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// The request body, or the reason it could not be read (413 when over the limit).
fn body(st: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, RequestError> {
    body.map_err(|e| {
        let status = e.status().as_u16();
        if status == 413 {
            RequestError { status, message: format!("the request body is larger than {} bytes", st.body_limit) }
        } else {
            RequestError { status, message: format!("cannot read the request body: {}", e.body_text()) }
        }
    })
}

fn drift_of(model: &LoadedModel) -> Response {
    let Some(monitor) = &model.drift else {
        let why = if model.bundle.reference.is_none() {
            "its bundle has no reference statistics (reference.json; bundles written before drift monitoring \
             lack it): retrain it with this dlp to monitor drift"
        } else {
            "drift monitoring is off (dlp serve --drift-window 0)"
        };
        return error(
            StatusCode::NOT_FOUND,
            format!("no drift report for model `{}` version {}: {why}", model.name, model.version),
        );
    };
    let report = monitor.report();
    respond(
        StatusCode::OK,
        &json!({
            "model_name": model.name,
            "model_version": model.version.to_string(),
            "window": monitor.window(),
            "rows": report.rows,
            "flagged": report.flagged,
            "score": report.score,
            "thresholds": report.thresholds,
            "features": report.features,
        }),
    )
}

async fn drift(State(st): State<Arc<AppState>>, UrlPath(name): UrlPath<String>) -> Response {
    match resolve(&st, &name, None) {
        Ok(m) => tokio::task::spawn_blocking(move || drift_of(&m))
            .await
            .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the drift computation failed")),
        Err(e) => e.into(),
    }
}

async fn drift_version(
    State(st): State<Arc<AppState>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Response {
    match resolve(&st, &name, Some(&version)) {
        Ok(m) => tokio::task::spawn_blocking(move || drift_of(&m))
            .await
            .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "the drift computation failed")),
        Err(e) => e.into(),
    }
}

/// Preprocesses, predicts through the batcher, counts and observes.
async fn run_model(
    st: &AppState,
    model: &LoadedModel,
    inputs: &pipeline_core::raw::RawInputs,
    request_id: Option<&str>,
) -> Result<Predictions, RequestError> {
    let rows = model.bundle.transform(inputs).map_err(|e| RequestError::bad(e.to_string()))?;
    // Records, or for a forecasting model the one window its rows make.
    let n = rows.len() / model.bundle.input_width().max(1);
    let preds = model.batcher.predict(rows, n).await.map_err(|e| match e {
        BatchError::Overloaded(_) | BatchError::Stopped => RequestError { status: 503, message: e.to_string() },
        BatchError::Model(m) => RequestError { status: 500, message: format!("the model failed: {m}") },
        BatchError::NonFinite(_) => RequestError { status: 422, message: e.to_string() },
    })?;
    match (&preds, model.bundle.task()) {
        (Predictions::Classes { .. }, pipeline_core::Task::Classification { labels }) => {
            let mut counts = vec![0u64; labels.len()];
            for b in preds.argmax().unwrap_or_default() {
                counts[b as usize] += 1;
            }
            for (label, c) in labels.iter().zip(counts).filter(|(_, c)| *c > 0) {
                st.metrics.predicted(&model.name, label, c);
            }
        }
        _ => st.metrics.predicted(&model.name, "value", preds.len() as u64),
    }
    let obs = Observation {
        model: &model.name,
        version: model.version,
        inputs,
        predictions: &preds,
        task: model.bundle.task(),
        request_id,
    };
    model.observers.iter().for_each(|o| o.observe(&obs));
    Ok(preds)
}

/// Runs `f` for the model `name` (at `version`) and records the outcome in its statistics:
/// every request that reaches a model counts, a malformed one as a failure.
async fn counted<T, F, Fut>(st: &AppState, name: &str, version: Option<&str>, f: F) -> Result<T, RequestError>
where
    F: FnOnce(Arc<LoadedModel>) -> Fut,
    Fut: Future<Output = Result<(T, usize), RequestError>>,
{
    let model = resolve(st, name, version)?;
    let start = Instant::now();
    let stats = model.stats.clone();
    let result = f(model).await;
    stats.record(result.as_ref().ok().map(|r| r.1), start.elapsed());
    result.map(|r| r.0)
}

/// The JSON length of a binary-extension request (`Inference-Header-Content-Length`).
fn binary_header(headers: &axum::http::HeaderMap) -> Result<Option<usize>, RequestError> {
    match headers.get("inference-header-content-length") {
        None => Ok(None),
        Some(v) => v.to_str().ok().and_then(|s| s.trim().parse().ok()).map(Some).ok_or_else(|| {
            RequestError::bad("Inference-Header-Content-Length must be the JSON part's length in bytes")
        }),
    }
}

async fn infer_impl(
    st: &AppState,
    name: &str,
    version: Option<&str>,
    headers: &axum::http::HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let result = counted(st, name, version, |model| async move {
        let mut binary_out: Vec<Vec<u8>> = Vec::new();
        let bytes = body(st, raw)?;
        let req: records::InferRequest = match binary_header(headers)? {
            Some(len) => records::parse_binary(&bytes, len)?,
            None => records::parse_json(&bytes)?,
        };
        let inputs = records::infer_inputs(&req, &model.bundle.preprocess.raw)?;
        records::check_outputs(&model.outputs, req.outputs.as_deref())?;
        let preds = run_model(st, &model, &inputs, req.id.as_deref()).await?;
        let outputs = records::infer_outputs(model.bundle.task(), &preds, req.outputs.as_deref())?;
        let mut listed = Vec::with_capacity(outputs.len());
        for o in &outputs {
            let mut v = serde_json::to_value(o).map_err(|e| RequestError { status: 500, message: e.to_string() })?;
            if records::wants_binary(&req, &o.name) {
                let bytes = records::encode_binary(o);
                v["parameters"] = json!({ "binary_data_size": bytes.len() });
                if let Some(m) = v.as_object_mut() {
                    m.remove("data");
                }
                binary_out.push(bytes);
            }
            listed.push(v);
        }
        let mut out = json!({
            "model_name": model.name,
            "model_version": model.version.to_string(),
            "outputs": listed,
        });
        if let Some(id) = req.id {
            out["id"] = Value::String(id);
        }
        Ok(((out, binary_out), preds.len()))
    })
    .await;
    match result {
        Err(e) => Response::from(e),
        Ok((v, binary_out)) if binary_out.is_empty() => respond(StatusCode::OK, &v),
        Ok((v, binary_out)) => {
            let head = v.to_string();
            let mut body = head.clone().into_bytes();
            binary_out.iter().for_each(|b| body.extend_from_slice(b));
            let mut resp = Response::new(Body::from(body));
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            if let Ok(len) = HeaderValue::from_str(&head.len().to_string()) {
                h.insert("inference-header-content-length", len);
            }
            resp
        }
    }
}

async fn infer(
    State(st): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
    headers: axum::http::HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    infer_impl(&st, &name, None, &headers, raw).await
}

async fn infer_version(
    State(st): State<Arc<AppState>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
    headers: axum::http::HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    infer_impl(&st, &name, Some(&version), &headers, raw).await
}

async fn predict_impl(
    st: &AppState,
    name: &str,
    version: Option<&str>,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let result = counted(st, name, version, |model| async move {
        let bytes = body(st, raw)?;
        let schema = &model.bundle.preprocess.raw;
        let inputs = if records::is_recording_upload(&bytes, schema) {
            records::recording_inputs(&bytes, schema)?
        } else {
            let req: records::PredictRequest = records::parse_json(&bytes)?;
            records::predict_inputs(&req, schema)?
        };
        let preds = run_model(st, &model, &inputs, None).await?;
        let task = model.bundle.task();
        let mut out = json!({
            "model_name": model.name,
            "model_version": model.version.to_string(),
            "predictions": records::predictions(task, &preds),
        });
        if let pipeline_core::Task::Classification { labels } = task {
            out["labels"] = json!(labels);
        }
        if let Some(series) = model.bundle.preprocess.series() {
            out["forecast"] = json!(records::forecast_steps(series, &inputs, &preds));
            out["target"] = json!(series.target);
        }
        Ok((out, preds.len()))
    })
    .await;
    result.map_or_else(Response::from, |v| respond(StatusCode::OK, &v))
}

async fn predict(
    State(st): State<Arc<AppState>>,
    UrlPath(name): UrlPath<String>,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    predict_impl(&st, &name, None, raw).await
}

async fn predict_version(
    State(st): State<Arc<AppState>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    predict_impl(&st, &name, Some(&version), raw).await
}

/// Loads `source` (a bundle or a repository) and builds the shared state. Returns what was
/// loaded or refused, for the log.
pub fn load(source: &Path, options: &ServeOptions) -> Result<(Arc<AppState>, Vec<Event>), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let mut observers = options.observers.clone();
    if let Some(log) = &options.prediction_log {
        let log = PredictionLog::open(log.clone())
            .map_err(|cause| ServeError::Io { what: format!("opening {}", log.path.display()), cause })?;
        observers.push(log.factory());
    }
    let ctx = LoadContext {
        batch: options.batch,
        metrics: metrics.clone(),
        observers,
        drift: options.drift.clone().filter(|d| d.window > 0),
        device: Device::Cpu,
    };
    let (registry, events) = Registry::open(source, ctx).map_err(ServeError::Load)?;
    let state = AppState {
        registry: Arc::new(registry),
        metrics,
        token: options.token.clone(),
        timeout: options.timeout,
        header_timeout: options.header_timeout,
        body_timeout: options.body_timeout,
        body_limit: options.body_limit,
    };
    Ok((Arc::new(state), events))
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting connections
/// and returns once the requests in flight are answered. A repository is polled for new
/// versions every `poll`; `log` sees each load and refusal.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    poll: Duration,
    log: Arc<dyn Fn(&Event) + Send + Sync>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let watcher = state.registry.is_repository().then(|| {
        let registry = state.registry.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                let r = registry.clone();
                if let Ok(events) = tokio::task::spawn_blocking(move || r.poll()).await {
                    events.iter().for_each(|e| log(e));
                }
            }
        })
    });
    let result = accept_loop(listener, state, shutdown).await;
    if let Some(w) = watcher {
        w.abort();
    }
    result
}

/// Accepts HTTP/1.1 connections until `shutdown`, then closes idle ones and waits for the
/// requests in flight. Unlike `axum::serve`, each connection has a header-read timeout that
/// also ends idle keep-alive connections (hyper measures it whenever the connection waits
/// for a request's head), so slow or silent clients cannot exhaust the server.
async fn accept_loop(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let header_timeout = state.header_timeout;
    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // A connection reset before it was accepted, or out of file descriptors:
                // keep serving the others (after a pause, for the latter).
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away or times out ends only its own connection.
            let _ = conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A server running on its own thread and runtime (tests, embedding); [`stop`](Self::stop)
/// shuts it down gracefully.
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its state (registry and metrics).
    pub state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Loads `source`, binds `addr` (port 0 picks a free one) and starts serving.
    pub fn start(source: &Path, addr: &str, options: ServeOptions) -> Result<Self, ServeError> {
        let (state, _) = load(source, &options)?;
        let io = |what: &str| {
            let what = what.to_string();
            move |cause| ServeError::Io { what, cause }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .worker_threads(2)
            .build()
            .map_err(io("starting the runtime"))?;
        let listener = rt.block_on(TcpListener::bind(addr)).map_err(io(&format!("binding {addr}")))?;
        let local = listener.local_addr().map_err(io("reading the bound address"))?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("dlp-serve".into())
            .spawn(move || {
                rt.block_on(serve(listener, st, options.poll, Arc::new(|_| {}), async move {
                    let _ = rx.await;
                }))
            })
            .map_err(io("starting the server thread"))?;
        Ok(Self { addr: local, state, stop: Some(tx), thread: Some(thread) })
    }

    /// Stops accepting connections, answers the requests in flight, and waits for the end.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                let ctrl_c = tokio::signal::ctrl_c();
                tokio::pin!(ctrl_c);
                tokio::select! {
                    _ = term.recv() => {}
                    _ = &mut ctrl_c => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `dlp serve`: loads `source`, binds `addr`, calls `on_ready` with the bound address, serves
/// until SIGTERM or Ctrl-C, then finishes the requests in flight and returns. `log` sees each
/// model load and refusal.
pub fn run(
    source: &Path,
    addr: &str,
    options: ServeOptions,
    log: Arc<dyn Fn(&Event) + Send + Sync>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let (state, events) = load(source, &options)?;
    events.iter().for_each(|e| log(e));
    let io = |what: String| move |cause| ServeError::Io { what, cause };
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(io("starting the runtime".into()))?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.map_err(io(format!("binding {addr}")))?;
        let local = listener.local_addr().map_err(io("reading the bound address".into()))?;
        on_ready(local);
        serve(listener, state, options.poll, log, termination()).await.map_err(io("serving".into()))
    })
}
