//! The HTTP server on a loopback port: every endpoint, every bad input, batching, auth,
//! limits, graceful shutdown, and a hot swap under concurrent requests.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use candle_core::Device;
use pipeline_core::Predictions;
use pipeline_core::raw::{ImageSet, RawInputs};
use serde_json::{Value, json};
use serve::batcher::BatchConfig;
use serve::server::{RunningServer, ServeOptions};

fn agent() -> ureq::Agent {
    // A fresh connection per request: ureq does not retry a POST on a pooled keep-alive
    // connection that the server has meanwhile closed (seen once in CI as a broken pipe), and
    // these tests are about the answers, not connection reuse.
    ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).max_idle_connections(0).build()
}

/// Sends a request; returns the status and the JSON body (`Null` when not JSON).
fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<&[u8]>, token: Option<&str>) -> (u16, Value) {
    let mut req = agent.request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let res = match body {
        Some(b) => req.set("Content-Type", "application/json").send_bytes(b),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// POSTs `body` over a raw connection, writing it from another thread, and reads the answer.
fn raw_post(addr: std::net::SocketAddr, path: &str, body: String) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(body.as_bytes()));
    });
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let _ = sending.join();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{text:?}"));
    let json = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(json).unwrap_or(Value::String(json.into())))
}

struct Client {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl Client {
    fn new(server: &RunningServer) -> Self {
        Self { base: format!("http://{}", server.addr), agent: agent(), token: None }
    }
    fn get(&self, path: &str) -> (u16, Value) {
        call(&self.agent, "GET", &format!("{}{path}", self.base), None, self.token.as_deref())
    }
    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        call(&self.agent, "POST", &format!("{}{path}", self.base), Some(body.as_bytes()), self.token.as_deref())
    }
    fn metrics(&self) -> String {
        let mut req = self.agent.get(&format!("{}/metrics", self.base));
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        req.call().unwrap().into_string().unwrap()
    }
}

/// Asserts a 4xx / 5xx JSON error with exactly this message.
#[track_caller]
fn assert_error(resp: (u16, Value), status: u16, message: &str) {
    assert_eq!(resp.0, status, "{:?}", resp.1);
    assert_eq!(resp.1["error"].as_str(), Some(message), "{:?}", resp.1);
}

/// Asserts an error whose message starts with `prefix`.
#[track_caller]
fn assert_error_starts(resp: (u16, Value), status: u16, prefix: &str) {
    assert_eq!(resp.0, status, "{:?}", resp.1);
    let m = resp.1["error"].as_str().unwrap_or_else(|| panic!("no JSON error: {:?}", resp.1));
    assert!(m.starts_with(prefix), "{m:?} does not start with {prefix:?}");
}

fn pixels(n: usize) -> Vec<u8> {
    (0..n * 16).map(|i| ((i * 37) % 256) as u8).collect()
}

fn infer_body(px: &[u8]) -> String {
    json!({"id": "r1", "inputs": [{"name": "pixels", "shape": [px.len() / 16, 1, 4, 4], "datatype": "UINT8", "data": px}]})
        .to_string()
}

fn png(px: &[u8]) -> String {
    let img = image::GrayImage::from_raw(4, 4, px.to_vec()).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    base64::engine::general_purpose::STANDARD.encode(out.into_inner())
}

fn options() -> ServeOptions {
    ServeOptions {
        batch: BatchConfig { window: Duration::from_millis(1), max_batch: 32, queue: 256 },
        ..Default::default()
    }
}

fn expected(bundle: &Path, px: &[u8]) -> Vec<f32> {
    let b = serve::Bundle::load(bundle, &Device::Cpu).unwrap();
    let imgs = ImageSet { channels: 1, height: 4, width: 4, pixels: px.iter().map(|&p| f32::from(p)).collect() };
    match b.predict(&RawInputs::Images(imgs)).unwrap() {
        Predictions::Classes { probs, .. } => probs,
        Predictions::Values(v) => v,
    }
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn every_endpoint_answers_and_every_bad_input_is_a_json_4xx() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    common::image_bundle(&bundle, 1);
    let server =
        RunningServer::start(&bundle, "127.0.0.1:0", ServeOptions { body_limit: 64 * 1024, ..options() }).unwrap();
    let c = Client::new(&server);

    // Health, server and model metadata.
    assert_eq!(c.get("/v2/health/live"), (200, json!({"live": true})));
    assert_eq!(c.get("/v2/health/ready"), (200, json!({"ready": true})));
    assert_eq!(c.get("/v2").1["name"], "dlp");
    let meta = c.get("/v2/models/tiny");
    assert_eq!(meta.0, 200);
    assert_eq!(
        meta.1,
        json!({
            "name": "tiny", "versions": ["1"], "platform": "dlp_candle",
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 1, 4, 4]}],
            "outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
        })
    );
    assert_eq!(c.get("/v2/models/tiny/versions/1").1, meta.1);
    assert_eq!(c.get("/v2/models/tiny/ready"), (200, json!({"name": "tiny", "ready": true})));

    // Inference on tensors reproduces the bundle's own predictions.
    let px = pixels(3);
    let want = expected(&bundle, &px);
    let (status, out) = c.post("/v2/models/tiny/infer", &infer_body(&px));
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["model_name"], "tiny");
    assert_eq!(out["model_version"], "1");
    assert_eq!(out["id"], "r1");
    assert_eq!(out["outputs"][1]["name"], "probabilities");
    assert_eq!(out["outputs"][1]["shape"], json!([3, 3]));
    let probs = floats(&out["outputs"][1]["data"]);
    for (a, b) in probs.iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{probs:?} vs {want:?}");
    }
    let labels: Vec<&str> = out["outputs"][0]["data"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for (i, l) in labels.iter().enumerate() {
        let row = &want[i * 3..i * 3 + 3];
        let best = (0..3).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        assert_eq!(*l, common::labels()[best]);
    }
    // Flat data and [n, 16] shapes are the same request; outputs can be chosen.
    let flat = json!({"inputs": [{"name": "pixels", "shape": [3, 16], "datatype": "FP32",
        "data": px.iter().map(|&p| f32::from(p)).collect::<Vec<_>>()}], "outputs": [{"name": "probabilities"}]});
    let (status, out2) = c.post("/v2/models/tiny/versions/1/infer", &flat.to_string());
    assert_eq!(status, 200, "{out2}");
    assert_eq!(out2["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(floats(&out2["outputs"][0]["data"]), probs);

    // Raw records: base64 PNGs give the same probabilities as the same pixels as a tensor.
    let instances: Vec<Value> = px.chunks(16).map(|p| json!({"image": png(p)})).collect();
    let (status, pred) = c.post("/v1/models/tiny/predict", &json!({ "instances": instances }).to_string());
    assert_eq!(status, 200, "{pred}");
    assert_eq!(pred["labels"], json!(common::labels()));
    for (i, p) in pred["predictions"].as_array().unwrap().iter().enumerate() {
        assert_eq!(p["label"], labels[i]);
        assert_eq!(floats(&p["probabilities"]), probs[i * 3..i * 3 + 3].to_vec());
    }
    let data_url = json!({"instances": [{"image": format!("data:image/png;base64,{}", png(&px[..16]))}]});
    assert_eq!(c.post("/v1/models/tiny/versions/1/predict", &data_url.to_string()).0, 200);

    // Bad input: each a JSON error saying what was wrong.
    let infer = |body: &str| c.post("/v2/models/tiny/infer", body);
    assert_error_starts(infer("{\"inputs\": [}"), 400, "malformed JSON: ");
    assert_error_starts(
        infer("{\"inputs\": [1]}"),
        400,
        "inputs[0]: invalid type: integer `1`, expected struct InferInput",
    );
    assert_error_starts(infer(""), 400, "empty body");
    assert_error_starts(infer("{\"inputs\": [{\"name\": \"pixels\"}]}"), 400, "inputs[0]: missing field `shape`");
    assert_error_starts(infer("{\"inputz\": []}"), 400, "invalid request: unknown field `inputz`");
    assert_error(
        infer(
            &json!({"inputs": [{"name": "pixels", "shape": [1, 1, 4, 5], "datatype": "FP32", "data": vec![0; 20]}]})
                .to_string(),
        ),
        400,
        "inputs[0].shape: [1, 1, 4, 5] does not fit this model, which takes [n, 1, 4, 4] or [n, 16] with n ≥ 1",
    );
    assert_error(
        infer(
            &json!({"inputs": [{"name": "pixels", "shape": [1, 16], "datatype": "FP32", "data": vec![0; 15]}]})
                .to_string(),
        ),
        400,
        "inputs[0]: shape [1, 16] has 16 elements, data has 15",
    );
    assert_error(
        infer(
            &json!({"inputs": [{"name": "pixels", "shape": [1, 16], "datatype": "BYTES", "data": vec!["a"; 16]}]})
                .to_string(),
        ),
        400,
        "inputs[0].datatype: `pixels` is numeric, got BYTES",
    );
    let mut nan: Vec<Value> = vec![json!(1.0); 16];
    nan[5] = json!("NaN");
    assert_error(
        infer(&json!({"inputs": [{"name": "pixels", "shape": [1, 16], "datatype": "FP32", "data": nan}]}).to_string()),
        400,
        "inputs[0].data[5]: \"NaN\" is not a number (datatype FP32)",
    );
    // JSON has no NaN or infinity literals: they are malformed JSON, and 1e999 is out of range.
    let lit = r#"{"inputs": [{"name": "pixels", "shape": [1, 1], "datatype": "FP32", "data": [NaN]}]}"#;
    assert_error_starts(infer(lit), 400, "malformed JSON: ");
    let inf = r#"{"inputs": [{"name": "pixels", "shape": [1, 1], "datatype": "FP32", "data": [1e999]}]}"#;
    assert_error_starts(infer(inf), 400, "malformed JSON: number out of range");
    assert_error_starts(
        infer(
            &json!({"inputs": [{"name": "pixels", "shape": [1, 16], "datatype": "FP32", "data": vec![300; 16]}]})
                .to_string(),
        ),
        400,
        "inputs[0].data[0]: 300 is not a pixel value",
    );
    assert_error(
        infer(
            &json!({"inputs": [{"name": "pixels", "shape": [1, 16], "datatype": "FP32", "data": vec![1; 16]}],
            "outputs": [{"name": "logits"}]})
            .to_string(),
        ),
        400,
        "outputs[0].name: unknown output `logits`: the model gives `label`, `probabilities`",
    );
    let predict = |body: &str| c.post("/v1/models/tiny/predict", body);
    assert_error_starts(
        predict(r#"{"instances": [{"image": "not base64!"}]}"#),
        400,
        "instances[0].image: not valid base64",
    );
    assert_error_starts(
        predict(
            &json!({"instances": [{"image": base64::engine::general_purpose::STANDARD.encode(b"GIF89a nope")}]})
                .to_string(),
        ),
        400,
        "instances[0].image: cannot decode the image",
    );
    assert_error(
        predict(r#"{"instances": [{"img": "x"}]}"#),
        400,
        "instances[0]: unknown field `img`: an image record is {\"image\": \"<base64 PNG or JPEG>\"}",
    );
    assert_error(predict(r#"{"instances": [{}]}"#), 400, "instances[0]: missing field `image` (a base64 PNG or JPEG)");

    // Unknown model, version, route, method.
    assert_error(
        c.post("/v2/models/nope/infer", &infer_body(&px)),
        404,
        "unknown model `nope`: this server serves `tiny`",
    );
    assert_error(c.get("/v2/models/nope"), 404, "unknown model `nope`: this server serves `tiny`");
    assert_error(
        c.post("/v2/models/tiny/versions/7/infer", &infer_body(&px)),
        404,
        "model `tiny` version 7 is not loaded: version 1 is served",
    );
    assert_error(c.get("/v2/models/tiny/versions/x"), 400, "version `x` is not a number");
    assert_error(c.get("/v3/anything"), 404, "no route /v3/anything");
    assert_error(c.get("/v2/models/tiny/infer"), 405, "GET is not allowed on /v2/models/tiny/infer");

    // Body limit. The server may answer before reading the whole body and close the connection,
    // so the body is written from another thread (ignoring a broken pipe) while the answer is read.
    let big = json!({"inputs": [{"name": "pixels", "shape": [5000, 16], "datatype": "FP32", "data": vec![1; 80_000]}]});
    assert_error(
        raw_post(server.addr, "/v2/models/tiny/infer", big.to_string()),
        413,
        "the request body is larger than 65536 bytes",
    );

    // The server kept serving through all of it, and counted it.
    assert_eq!(c.post("/v2/models/tiny/infer", &infer_body(&px)).0, 200);
    let m = c.metrics();
    assert!(m.contains(r#"dlp_requests_total{endpoint="/v2/models/{name}/infer",status="200"} 2"#), "{m}");
    assert!(m.contains(r#"dlp_requests_total{endpoint="/v2/models/{name}/infer",status="400"}"#), "{m}");
    assert!(m.contains(r#"dlp_requests_total{endpoint="/v2/models/{name}/infer",status="413"} 1"#), "{m}");
    assert!(m.contains(r#"dlp_requests_total{endpoint="unmatched",status="404"} 1"#), "{m}");
    assert!(m.contains(r#"dlp_request_duration_seconds_bucket{le="+Inf",endpoint="/v2/models/{name}/infer"}"#), "{m}");
    assert!(m.contains(r#"dlp_batch_size_count{model="tiny"}"#), "{m}");
    assert!(m.contains(r#"dlp_model_version{model="tiny"} 1"#), "{m}");
    // Predicted classes: 3 (infer) + 3 (infer, flat) + 3 (predict) + 1 (data URL) + 3 (last infer).
    let counted: u64 = common::labels()
        .iter()
        .filter_map(|l| {
            let key = format!("dlp_predictions_total{{model=\"tiny\",class=\"{l}\"}} ");
            m.lines().find_map(|line| line.strip_prefix(&key).map(|v| v.parse::<u64>().unwrap()))
        })
        .sum();
    assert_eq!(counted, 13, "{m}");
    server.stop().unwrap();
}

#[test]
fn table_models_take_named_fields_and_column_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    common::table_bundle(&bundle, 3);
    let server = RunningServer::start(&bundle, "127.0.0.1:0", options()).unwrap();
    let c = Client::new(&server);
    let meta = c.get("/v2/models/table").1;
    assert_eq!(
        meta["inputs"],
        json!([{"name": "x", "datatype": "FP32", "shape": [-1]},
               {"name": "color", "datatype": "BYTES", "shape": [-1]},
               {"name": "ok", "datatype": "BOOL", "shape": [-1]}])
    );
    let records =
        r#"{"instances": [{"x": 2.5, "color": "red", "ok": true}, {"x": null, "color": "teal", "ok": "no"}]}"#;
    let (status, pred) = c.post("/v1/models/table/predict", records);
    assert_eq!(status, 200, "{pred}");
    let tensors = json!({"inputs": [
        {"name": "x", "shape": [2], "datatype": "FP64", "data": [2.5, null]},
        {"name": "color", "shape": [2, 1], "datatype": "BYTES", "data": [["red"], ["teal"]]},
        {"name": "ok", "shape": [2], "datatype": "BOOL", "data": [true, false]}]});
    let (status, out) = c.post("/v2/models/table/infer", &tensors.to_string());
    assert_eq!(status, 200, "{out}");
    let probs = floats(&out["outputs"][1]["data"]);
    let from_records: Vec<f32> =
        pred["predictions"].as_array().unwrap().iter().flat_map(|p| floats(&p["probabilities"])).collect();
    assert_eq!(probs, from_records);
    // The same as the bundle predicts directly.
    let b = serve::Bundle::load(&bundle, &Device::Cpu).unwrap();
    let req: serve::records::PredictRequest = serde_json::from_str(records).unwrap();
    let Predictions::Classes { probs: direct, .. } =
        b.predict(&serve::records::predict_inputs(&req, &b.preprocess.raw).unwrap()).unwrap()
    else {
        panic!("classes")
    };
    assert_eq!(probs, direct);

    let predict = |body: &str| c.post("/v1/models/table/predict", body);
    assert_error(
        predict(r#"{"instances": [{"x": 1, "color": "red"}]}"#),
        400,
        "instances[0]: missing field `ok` (null for a missing value): the model reads `x`, `color`, `ok`",
    );
    assert_error(
        predict(r#"{"instances": [{"x": 1, "color": "red", "ok": true, "z": 0}]}"#),
        400,
        "instances[0]: unknown field `z`: the model reads `x`, `color`, `ok`",
    );
    assert_error(
        predict(r#"{"instances": [{"x": "inf", "color": "red", "ok": true}]}"#),
        400,
        "instances[0].x: \"inf\" is not a finite number",
    );
    // A finite input too large for f32 is refused; one that fits f32 but drives the model's
    // output to NaN / infinity gets a 422 naming the record, never `null` probabilities.
    assert_error(
        predict(r#"{"instances": [{"x": 1e300, "color": "red", "ok": true}]}"#),
        400,
        "instances[0].x: 1e+300 is too large for the model, which computes in 32-bit floats (at most about 3.4e38)",
    );
    // A model whose training values of `x` barely vary: 3e38 overflows once standardized.
    let narrow = tmp.path().join("narrow");
    common::narrow_bundle(&narrow, 3);
    // Two rows fill a batch, so the pair of one-row requests below runs as one forward pass.
    let opts = ServeOptions {
        batch: BatchConfig { window: Duration::from_millis(1000), max_batch: 2, queue: 256 },
        ..options()
    };
    let narrow_server = RunningServer::start(&narrow, "127.0.0.1:0", opts).unwrap();
    let n = Client::new(&narrow_server);
    let nan = "record 1: the model's output is not finite; an input value is likely far outside the range the \
               model was trained on, so no prediction is given";
    assert_error(n.post("/v1/models/narrow/predict", r#"{"instances": [{"x": 1}, {"x": 3e38}]}"#), 422, nan);
    let huge = json!({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 3e38]}]});
    assert_error(n.post("/v2/models/narrow/infer", &huge.to_string()), 422, nan);
    assert_eq!(n.post("/v1/models/narrow/predict", r#"{"instances": [{"x": 1.000002}]}"#).0, 200);
    // Batched with a request whose output is not finite, a good request is still answered.
    let passes = || {
        let m = n.metrics();
        let v = |key: &str| -> f64 {
            m.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} in {m}"))
                .trim()
                .parse()
                .unwrap()
        };
        (v("dlp_batch_size_count{model=\"narrow\"}"), v("dlp_batch_size_sum{model=\"narrow\"}"))
    };
    let before = passes();
    let base = format!("http://{}", narrow_server.addr);
    let send = |body: &'static str| {
        let url = format!("{base}/v1/models/narrow/predict");
        std::thread::spawn(move || call(&agent(), "POST", &url, Some(body.as_bytes()), None))
    };
    let (good, bad) = (send(r#"{"instances": [{"x": 1.000003}]}"#), send(r#"{"instances": [{"x": 3e38}]}"#));
    let (good, bad) = (good.join().unwrap(), bad.join().unwrap());
    assert_eq!(good.0, 200, "{:?}", good.1);
    assert!(good.1["predictions"][0]["confidence"].as_f64().unwrap().is_finite());
    assert_error(bad, 422, &nan.replace("record 1", "record 0"));
    let after = passes();
    assert_eq!((after.0 - before.0, after.1 - before.1), (1.0, 2.0), "one forward pass of both rows");
    narrow_server.stop().unwrap();
    assert_eq!(predict(records).0, 200, "the server goes on");
    assert_error(
        predict(r#"{"instances": [{"x": [1], "color": "red", "ok": true}]}"#),
        400,
        "instances[0].x: [1] is not a number",
    );
    assert_error(
        c.post(
            "/v2/models/table/infer",
            r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}"#,
        ),
        400,
        "inputs: missing input `color`: the model reads `x`, `color`, `ok`",
    );
    server.stop().unwrap();
}

#[test]
fn concurrent_requests_are_batched_into_one_forward_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    common::image_bundle(&bundle, 1);
    let opts = ServeOptions {
        batch: BatchConfig { window: Duration::from_millis(1000), max_batch: 8, queue: 64 },
        ..options()
    };
    let server = RunningServer::start(&bundle, "127.0.0.1:0", opts).unwrap();
    let base = format!("http://{}", server.addr);
    let px = pixels(1);
    let want = expected(&bundle, &px);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (base, body) = (base.clone(), infer_body(&px));
            std::thread::spawn(move || {
                call(&agent(), "POST", &format!("{base}/v2/models/tiny/infer"), Some(body.as_bytes()), None)
            })
        })
        .collect();
    for t in threads {
        let (status, out) = t.join().unwrap();
        assert_eq!(status, 200, "{out}");
        let got = floats(&out["outputs"][1]["data"]);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6);
        }
    }
    let m = Client::new(&server).metrics();
    let value = |key: &str| -> f64 {
        m.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("{key} in {m}")).trim().parse().unwrap()
    };
    assert_eq!(value("dlp_batch_size_sum{model=\"tiny\"}"), 8.0);
    // Eight single-row requests within the window: fewer forward passes than requests (one,
    // unless a thread started late), and none larger than the maximum.
    let batches = value("dlp_batch_size_count{model=\"tiny\"}");
    assert!(batches < 8.0, "{batches} batches for 8 concurrent requests:\n{m}");
    assert!(m.contains("dlp_batch_size_bucket{le=\"8.0\",model=\"tiny\"} "), "{m}");
    server.stop().unwrap();
}

#[test]
fn bearer_token_timeout_and_graceful_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    common::image_bundle(&bundle, 1);
    let px = pixels(1);

    // A token guards everything but the health checks.
    let opts = ServeOptions { token: Some("s3cret".into()), ..options() };
    let server = RunningServer::start(&bundle, "127.0.0.1:0", opts).unwrap();
    let mut c = Client::new(&server);
    assert_eq!(c.get("/v2/health/ready").0, 200);
    let msg = "missing or wrong bearer token (Authorization: Bearer <token>)";
    assert_error(c.post("/v2/models/tiny/infer", &infer_body(&px)), 401, msg);
    assert_error(c.get("/metrics"), 401, msg);
    c.token = Some("wrong".into());
    assert_error(c.get("/v2/models/tiny"), 401, msg);
    c.token = Some("s3cret".into());
    assert_eq!(c.post("/v2/models/tiny/infer", &infer_body(&px)).0, 200);
    // The scheme name is case-insensitive (RFC 7235); the token is not.
    let url = format!("http://{}/v2/models/tiny", server.addr);
    for (value, status) in [
        ("bearer s3cret", 200),
        ("BEARER  s3cret", 200),
        ("Bearer S3CRET", 401),
        ("Basic s3cret", 401),
        ("s3cret", 401),
    ] {
        let r = match c.agent.get(&url).set("Authorization", value).call() {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(r, status, "Authorization: {value}");
    }
    server.stop().unwrap();

    // A request that outlives the timeout gets a 503 and the server goes on.
    let opts = ServeOptions {
        timeout: Duration::from_millis(100),
        batch: BatchConfig { window: Duration::from_millis(400), max_batch: 64, queue: 8 },
        ..options()
    };
    let server = RunningServer::start(&bundle, "127.0.0.1:0", opts).unwrap();
    let c = Client::new(&server);
    assert_error(
        c.post("/v2/models/tiny/infer", &infer_body(&px)),
        503,
        "the request took longer than the server's timeout of 100 ms",
    );
    assert_eq!(c.get("/v2/health/live").0, 200);
    server.stop().unwrap();

    // Shutdown waits for the request in flight (held 1.5 s by the batch window).
    let opts = ServeOptions {
        batch: BatchConfig { window: Duration::from_millis(1500), max_batch: 64, queue: 8 },
        ..options()
    };
    let server = RunningServer::start(&bundle, "127.0.0.1:0", opts).unwrap();
    let addr = server.addr;
    let inflight = std::thread::spawn(move || raw_post(addr, "/v2/models/tiny/infer", infer_body(&pixels(1))));
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    server.stop().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300), "stop returned before the request was answered");
    let (status, out) = inflight.join().unwrap();
    assert_eq!(status, 200, "{out}");
}

/// Reads from `stream` until the server closes it (EOF or reset: true) or 15 s pass with the
/// connection still open (false); returns what was read too.
fn closed_by_server(stream: &mut std::net::TcpStream) -> (bool, String) {
    use std::io::Read;
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (true, String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return (false, String::from_utf8_lossy(&got).into_owned());
            }
            Err(_) => return (true, String::from_utf8_lossy(&got).into_owned()),
        }
    }
}

#[test]
fn slow_idle_and_short_bodied_clients_are_cut_off() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    common::image_bundle(&bundle, 1);
    let opts = ServeOptions {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        ..options()
    };
    let server = RunningServer::start(&bundle, "127.0.0.1:0", opts).unwrap();
    let addr = server.addr;

    // Silent: connected, never a byte.
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    assert!(closed_by_server(&mut silent).0, "a silent connection is closed");

    // Slow headers: one byte every 50 ms would take 4 s for this head; the server hangs up
    // before the head is complete, so the writer sees the connection closed.
    let head = format!("GET /v2/health/live HTTP/1.1\r\nHost: {addr}\r\nX-Padding: {}\r\n\r\n", "a".repeat(40));
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    let mut sent = 0;
    for b in head.as_bytes() {
        if slow.write_all(&[*b]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let (closed, answer) = closed_by_server(&mut slow);
    assert!(closed, "a slow-header connection is closed");
    assert!(!answer.contains("200 OK"), "the slow request was never answered: {answer:?} after {sent} bytes");

    // Idle keep-alive: one answered request, then nothing: closed.
    let mut idle = std::net::TcpStream::connect(addr).unwrap();
    idle.write_all(format!("GET /v2/health/live HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
    let (closed, answer) = closed_by_server(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(closed, "an idle keep-alive connection is closed");

    // A body shorter than its Content-Length: 408 with the reason, not a 503 after the
    // request timeout.
    let mut short = std::net::TcpStream::connect(addr).unwrap();
    short
        .write_all(
            format!(
                "POST /v2/models/tiny/infer HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"inputs\""
            )
            .as_bytes(),
        )
        .unwrap();
    let (_, answer) = closed_by_server(&mut short);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        answer.contains(r#"{"error":"the request body did not arrive within 300 ms (Content-Length says 100 bytes)"}"#),
        "{answer:?}"
    );

    // The server goes on answering.
    assert_eq!(Client::new(&server).post("/v2/models/tiny/infer", &infer_body(&pixels(2))).0, 200);
    let m = Client::new(&server).metrics();
    assert!(m.contains(r#"dlp_requests_total{endpoint="/v2/models/{name}/infer",status="408"} 1"#), "{m}");
    server.stop().unwrap();
}

/// Publishes `dir` as version `v` of the repository model atomically (written aside, renamed).
fn publish(model_dir: &Path, v: u64, seed: u64, broken: bool) {
    let staging = model_dir.join(format!("{v}.partial"));
    common::image_bundle(&staging, seed);
    if broken {
        let w = staging.join("model.safetensors");
        let bytes = std::fs::read(&w).unwrap();
        std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    }
    std::fs::rename(&staging, model_dir.join(v.to_string())).unwrap();
}

#[test]
fn repository_hot_swap_under_concurrent_requests_fails_no_request() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("models");
    let model_dir = repo.join("digits");
    publish(&model_dir, 1, 1, false);
    // A broken version 2 is refused at start: version 1 is served.
    publish(&model_dir, 2, 2, true);
    let opts = ServeOptions { poll: Duration::from_millis(50), ..options() };
    let server = RunningServer::start(&repo, "127.0.0.1:0", opts).unwrap();
    let c = Client::new(&server);
    assert_eq!(c.get("/v2/models/digits").1["versions"], json!(["1"]));
    let index = c.post("/v2/repository/index", "").1;
    assert_eq!(index[0], json!({"name": "digits", "version": "1", "state": "READY", "reason": ""}));
    assert_eq!(index[1]["version"], "2");
    assert_eq!(index[1]["state"], "UNAVAILABLE");
    assert!(index[1]["reason"].as_str().unwrap().contains("model.safetensors"), "{index}");
    assert_error_starts(
        c.post("/v2/models/digits/versions/2/infer", &infer_body(&pixels(1))),
        404,
        "model `digits` version 2 is not loaded (it was refused: ",
    );

    let px = pixels(2);
    let v1 = expected(&model_dir.join("1"), &px);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let base = format!("http://{}", server.addr);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, failures, base, body) = (stop.clone(), failures.clone(), base.clone(), infer_body(&px));
            std::thread::spawn(move || {
                let agent = agent();
                let mut seen = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let (status, out) =
                        call(&agent, "POST", &format!("{base}/v2/models/digits/infer"), Some(body.as_bytes()), None);
                    if status == 200 {
                        seen.push((
                            out["model_version"].as_str().unwrap().to_string(),
                            floats(&out["outputs"][1]["data"]),
                        ));
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                seen
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(200));
    publish(&model_dir, 3, 3, false);
    let v3 = expected(&model_dir.join("3"), &px);
    let wait_for = |version: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.get("/v2/models/digits").1["versions"] != json!([version]) {
            assert!(Instant::now() < deadline, "version {version} never served");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("3");
    std::thread::sleep(Duration::from_millis(200));
    // A broken version 4 is refused while version 3 keeps serving.
    publish(&model_dir, 4, 4, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.post("/v2/repository/index", "").1.as_array().unwrap().iter().any(|e| e["version"] == "4") {
        assert!(Instant::now() < deadline, "version 4 never looked at");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<(String, Vec<f32>)> = clients.into_iter().flat_map(|t| t.join().unwrap()).collect();

    assert_eq!(failures.load(Ordering::Relaxed), 0, "failed requests during the swap");
    let count = |v: &str| seen.iter().filter(|(s, _)| s == v).count();
    assert!(count("1") > 0 && count("3") > 0, "answered by v1 {} times, by v3 {} times", count("1"), count("3"));
    assert_eq!(count("1") + count("3"), seen.len(), "only versions 1 and 3 ever answer");
    // Each answer is exactly its version's model: no request saw a half-swapped model.
    for (v, probs) in &seen {
        let want = if v == "1" { &v1 } else { &v3 };
        for (a, b) in probs.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "version {v}: {probs:?} vs {want:?}");
        }
    }
    assert_eq!(c.get("/v2/models/digits").1["versions"], json!(["3"]));
    let m = c.metrics();
    assert!(m.contains(r#"dlp_model_loads_total{model="digits",outcome="refused"} 2"#), "{m}");
    assert!(m.contains(r#"dlp_model_loads_total{model="digits",outcome="loaded"} 2"#), "{m}");
    server.stop().unwrap();
}

#[test]
fn nothing_to_serve_is_an_error_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = RunningServer::start(&empty, "127.0.0.1:0", options()).err().unwrap().to_string();
    assert!(err.contains("neither a bundle (no bundle.json) nor a model repository"), "{err}");
    let model_dir = tmp.path().join("repo/m");
    publish(&model_dir, 1, 1, true);
    let err = RunningServer::start(&tmp.path().join("repo"), "127.0.0.1:0", options()).err().unwrap().to_string();
    assert!(err.contains("no model version could be loaded: refused m version 1: "), "{err}");
    assert!(RunningServer::start(&tmp.path().join("nope"), "127.0.0.1:0", options()).is_err());
}

#[test]
fn drift_is_explained_when_unavailable_and_predictions_are_logged_with_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    common::table_bundle(&bundle, 3);
    let records =
        r#"{"instances": [{"x": 2.5, "color": "red", "ok": true}, {"x": null, "color": "teal", "ok": false}]}"#;

    // A bundle written before drift monitoring (no reference.json) still serves.
    let server = RunningServer::start(&bundle, "127.0.0.1:0", options()).unwrap();
    let c = Client::new(&server);
    assert_eq!(c.post("/v1/models/table/predict", records).0, 200);
    assert_error_starts(
        c.get("/v1/models/table/drift"),
        404,
        "no drift report for model `table` version 1: its bundle has no reference statistics (reference.json",
    );
    assert_error_starts(c.get("/v1/models/nope/drift"), 404, "unknown model `nope`");
    assert!(!c.metrics().contains("dlp_drift_score{"));
    server.stop().unwrap();

    // With a reference (fitted on the same eight records the preprocessing saw).
    let b = serve::Bundle::load(&bundle, &Device::Cpu).unwrap();
    let n = |v: &[f64]| pipeline_core::raw::Values::Numbers(v.to_vec());
    let colors = ["red", "green", "red", "blue", "green", "red", "blue", "blue"];
    let train = RawInputs::Table(pipeline_core::raw::Table {
        columns: vec![
            pipeline_core::raw::Column {
                name: "x".into(),
                kind: pipeline_core::FeatureKind::Numeric,
                values: n(&[1., 2., 3., 4., 5., 6., 7., 8.]),
            },
            pipeline_core::raw::Column {
                name: "color".into(),
                kind: pipeline_core::FeatureKind::Categorical,
                values: pipeline_core::raw::Values::from_strings(colors.iter().map(|s| Some(s.to_string()))),
            },
            pipeline_core::raw::Column {
                name: "ok".into(),
                kind: pipeline_core::FeatureKind::Boolean,
                values: n(&[1., 0., 1., 0., 1., 1., 0., 0.]),
            },
        ],
    });
    let preds = b.predict(&train).unwrap();
    let reference =
        serve::drift::Reference::fit(&train, Some(&preds), b.task(), &serve::drift::ReferenceOptions::default())
            .unwrap();
    serve::write_reference(&pipeline_core::BundleDir::new(&bundle), &reference).unwrap();
    let log = tmp.path().join("logs/predictions.jsonl");
    let opts = ServeOptions {
        drift: Some(serve::drift::DriftOptions {
            window: 3,
            thresholds: serve::drift::Thresholds { min_rows: 1, ..Default::default() },
            interval: Duration::from_millis(10),
            log: Arc::new(|_| {}),
        }),
        prediction_log: Some(serve::predlog::PredictionLogOptions {
            max_bytes: 1000,
            keep: 2,
            ..serve::predlog::PredictionLogOptions::new(&log)
        }),
        ..options()
    };
    let server = RunningServer::start(&bundle, "127.0.0.1:0", opts).unwrap();
    let c = Client::new(&server);
    for _ in 0..10 {
        assert_eq!(c.post("/v1/models/table/predict", records).0, 200);
    }
    let infer = json!({"id": "client-7", "inputs": [
        {"name": "x", "shape": [1], "datatype": "FP64", "data": [4.0]},
        {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["blue"]},
        {"name": "ok", "shape": [1], "datatype": "BOOL", "data": [false]}]});
    assert_eq!(c.post("/v2/models/table/infer", &infer.to_string()).0, 200);
    let (status, d) = c.get("/v1/models/table/drift");
    assert_eq!(status, 200, "{d}");
    // The window keeps the last three records.
    assert_eq!((d["model_version"].as_str(), d["window"].as_u64(), d["rows"].as_u64()), (Some("1"), Some(3), Some(3)));
    let names: Vec<&str> = d["features"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["x", "color", "ok", "prediction"]);
    assert_eq!(d["features"][1]["unseen"], 1, "teal was never seen in training: {d}");
    server.stop().unwrap();

    // 21 records, about 250 bytes a line: rotated at 1000 bytes, two old files kept.
    let mut files: Vec<String> = std::fs::read_dir(log.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["predictions.jsonl", "predictions.jsonl.1", "predictions.jsonl.2"]);
    let mut lines = Vec::new();
    for f in files.iter().rev() {
        let text = std::fs::read_to_string(log.parent().unwrap().join(f)).unwrap();
        assert!(text.len() <= 1000, "{f}: {} bytes", text.len());
        lines.extend(text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
    }
    let last = lines.last().unwrap();
    assert_eq!(last["request_id"], "client-7");
    assert_eq!(last["inputs"], json!({"x": 4.0, "color": "blue", "ok": 0.0}));
    assert_eq!(
        (last["model"].as_str(), last["version"].as_u64(), last["row"].as_u64()),
        (Some("table"), Some(1), Some(0))
    );
    let probs = last["probabilities"].as_object().unwrap();
    assert_eq!(probs.keys().collect::<Vec<_>>(), ["no", "yes"]);
    assert_eq!(last["prediction"], if probs["no"].as_f64() > probs["yes"].as_f64() { "no" } else { "yes" });
    // Records of one request share an id; ids differ between requests.
    let second_last = &lines[lines.len() - 2];
    assert_eq!((second_last["row"].as_u64(), lines[lines.len() - 3]["row"].as_u64()), (Some(1), Some(0)));
    assert_eq!(second_last["id"], lines[lines.len() - 3]["id"]);
    assert_ne!(second_last["id"], last["id"]);
    assert!(second_last["inputs"]["x"].is_null(), "a missing value is null");
}

#[test]
fn triton_model_configuration_and_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    common::image_bundle(&bundle, 1);
    let server = RunningServer::start(&bundle, "127.0.0.1:0", options()).unwrap();
    let c = Client::new(&server);
    let extensions = c.get("/v2").1["extensions"].clone();
    assert_eq!(extensions, json!(["model_repository", "model_configuration", "statistics"]));
    let (status, config) = c.get("/v2/models/tiny/config");
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["name"], "tiny");
    assert_eq!(config["max_batch_size"], json!(options().batch.max_batch));
    assert_eq!(config["input"], json!([{"name": "pixels", "data_type": "TYPE_FP32", "dims": [1, 4, 4]}]));
    assert_eq!(
        config["output"],
        json!([{"name": "label", "data_type": "TYPE_STRING", "dims": []},
               {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [3]}])
    );
    assert_eq!(c.get("/v2/models/tiny/versions/1/config").1, config);
    assert_eq!(c.get("/v2/models/tiny/versions/2/config").0, 404);

    // Two good requests (3 and 2 rows) and a bad one.
    let stats = || c.get("/v2/models/tiny/stats").1["model_stats"][0].clone();
    assert_eq!(stats()["inference_count"], 0);
    assert_eq!(c.post("/v2/models/tiny/infer", &infer_body(&pixels(3))).0, 200);
    assert_eq!(c.post("/v2/models/tiny/infer", &infer_body(&pixels(2))).0, 200);
    let bad = json!({"inputs": [{"name": "pixels", "shape": [1, 1, 4, 5], "datatype": "FP32", "data": vec![0; 20]}]});
    assert_eq!(c.post("/v2/models/tiny/infer", &bad.to_string()).0, 400);
    let s = stats();
    assert_eq!((s["name"].clone(), s["version"].clone()), (json!("tiny"), json!("1")));
    assert_eq!(s["inference_count"], 5, "{s}");
    assert_eq!(s["execution_count"], 2, "{s}");
    assert_eq!(s["inference_stats"]["success"]["count"], 2, "{s}");
    assert!(s["inference_stats"]["success"]["ns"].as_u64().unwrap() > 0);
    assert_eq!(s["inference_stats"]["fail"]["count"], 1, "{s}");
    assert!(s["last_inference"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(c.get("/v2/models/stats").1["model_stats"].as_array().unwrap().len(), 1);
    assert_eq!(c.get("/v2/models/tiny/versions/1/stats").1["model_stats"][0]["inference_count"], 5);
}

#[test]
fn binary_tensors_in_and_out_match_json_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    common::image_bundle(&bundle, 1);
    let server = RunningServer::start(&bundle, "127.0.0.1:0", options()).unwrap();
    let c = Client::new(&server);
    let px = pixels(2);
    let (_, json_out) = c.post("/v2/models/tiny/infer", &infer_body(&px));
    let want = floats(&json_out["outputs"][1]["data"]);
    // Triton's binary extension: JSON header, then the raw FP32 data; all outputs binary.
    let head = json!({"inputs": [{"name": "pixels", "shape": [2, 1, 4, 4], "datatype": "FP32",
        "parameters": {"binary_data_size": px.len() * 4}}], "parameters": {"binary_data_output": true}})
    .to_string();
    let mut body = head.clone().into_bytes();
    px.iter().for_each(|&p| body.extend_from_slice(&f32::from(p).to_le_bytes()));
    let resp = agent()
        .post(&format!("http://{}/v2/models/tiny/infer", server.addr))
        .set("Inference-Header-Content-Length", &head.len().to_string())
        .send_bytes(&body)
        .unwrap();
    let json_len: usize = resp.header("Inference-Header-Content-Length").unwrap().parse().unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes).unwrap();
    let meta: Value = serde_json::from_slice(&bytes[..json_len]).unwrap();
    let label_len = meta["outputs"][0]["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
    let probs: Vec<f32> =
        bytes[json_len + label_len..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(probs, want);
    assert!(meta["outputs"][1].get("data").is_none(), "{meta}");
    // A declared size past the body is a 400.
    let short = agent()
        .post(&format!("http://{}/v2/models/tiny/infer", server.addr))
        .set("Inference-Header-Content-Length", &head.len().to_string())
        .send_bytes(&body[..body.len() - 4]);
    assert!(matches!(short, Err(ureq::Error::Status(400, _))));
}
