//! Requests and responses of the server, independent of HTTP: the Open Inference Protocol's
//! tensors (KServe V2) and the raw-record `predict` body, each read into the bundle's
//! [`RawInputs`] with a precise error for anything that does not fit.
//!
//! A model's V2 inputs are its *raw* inputs (before the bundle's preprocessing):
//!
//! - image models: one tensor `pixels`, shape `[n, channels, height, width]` (or
//!   `[n, channels·height·width]`), 8-bit values 0–255 in any numeric datatype;
//! - audio models: one tensor `waveform`, shape `[n, samples]` (the bundle's clip length at its
//!   sample rate), mono samples in `[-1, 1]`; the `predict` body takes recordings instead:
//!   `{"audio": "<base64 WAV / FLAC / Ogg / MP3>"}`, or one recording as the whole body
//!   ([`is_recording_upload`]), decoded, resampled and padded or cropped as in training;
//! - table models: one tensor per input column, named as the column, shape `[n]` or `[n, 1]`:
//!   numeric columns `FP32` / `FP64` / integer types, boolean columns `BOOL`, categorical and
//!   text columns `BYTES` (strings); `null` is a missing value, imputed as in training.
//!
//! Forecasting models read a table like any table model, but the rows (or tensor elements) of
//! one request are one series in time order: the last `history` rows with a target value are
//! the window, followed by the `horizon` rows of known covariates when the model takes them
//! (target `null`).
//!
//! Outputs: `label` (`BYTES`, the most probable class) and `probabilities` (`FP32`,
//! `[n, classes]`) for classification, `value` (`FP32`, `[n]`) for regression, `forecast`
//! (`FP32`, `[1, horizon]`) for forecasting.

use base64::Engine as _;
use pipeline_core::raw::{AudioSet, Column, ImageSet, RawInputs, RawSchema, Table, Values};
use pipeline_core::{Feature, FeatureKind, Predictions, Task};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request that cannot be served, with the HTTP status to answer and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// The HTTP status code (4xx for the client's mistakes).
    pub status: u16,
    /// What was wrong, for the JSON body `{"error": …}`.
    pub message: String,
}

impl RequestError {
    /// A 400 Bad Request.
    pub fn bad(message: impl Into<String>) -> Self {
        Self { status: 400, message: message.into() }
    }

    /// A 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: 404, message: message.into() }
    }
}

/// `Result` with a [`RequestError`].
pub type Result<T, E = RequestError> = std::result::Result<T, E>;

/// One tensor's description in model metadata: name, datatype, shape (`-1` for the batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// The tensor's name.
    pub name: String,
    /// `FP32`, `BOOL`, `BYTES`, ….
    pub datatype: String,
    /// The shape; `-1` where any size is accepted.
    pub shape: Vec<i64>,
}

/// The V2 inputs of a model that reads `raw`.
pub fn input_specs(raw: &RawSchema) -> Vec<TensorSpec> {
    match raw {
        RawSchema::Image { channels, height, width } => vec![TensorSpec {
            name: "pixels".into(),
            datatype: "FP32".into(),
            shape: vec![-1, *channels as i64, *height as i64, *width as i64],
        }],
        RawSchema::Audio { samples, .. } => {
            vec![TensorSpec { name: "waveform".into(), datatype: "FP32".into(), shape: vec![-1, *samples as i64] }]
        }
        RawSchema::Table { columns } => columns
            .iter()
            .map(|c| TensorSpec {
                name: c.name.clone(),
                datatype: match c.kind {
                    FeatureKind::Numeric => "FP32",
                    FeatureKind::Boolean => "BOOL",
                    FeatureKind::Categorical | FeatureKind::Text => "BYTES",
                }
                .into(),
                shape: vec![-1],
            })
            .collect(),
    }
}

/// The V2 outputs of a model for `task`.
pub fn output_specs(task: &Task) -> Vec<TensorSpec> {
    match task {
        Task::Classification { labels } => vec![
            TensorSpec { name: "label".into(), datatype: "BYTES".into(), shape: vec![-1] },
            TensorSpec { name: "probabilities".into(), datatype: "FP32".into(), shape: vec![-1, labels.len() as i64] },
        ],
        Task::Forecast { horizon } => {
            vec![TensorSpec { name: "forecast".into(), datatype: "FP32".into(), shape: vec![-1, *horizon as i64] }]
        }
        _ => vec![TensorSpec { name: "value".into(), datatype: "FP32".into(), shape: vec![-1] }],
    }
}

/// A V2 inference request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters (accepted, none used).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// The input tensors.
    pub inputs: Vec<InferInput>,
    /// The outputs wanted (all when absent).
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// One input tensor of a V2 request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferInput {
    /// Which input.
    pub name: String,
    /// Its shape.
    pub shape: Vec<i64>,
    /// Its datatype.
    pub datatype: String,
    /// Its elements, row-major, flat or nested (absent: given as binary data, [`binary_inputs`]).
    #[serde(default)]
    pub data: Value,
    /// Tensor parameters (`binary_data_size` of the binary tensor extension; others accepted).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, Value>>,
}

/// One output asked for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedOutput {
    /// Which output.
    pub name: String,
    /// Output parameters (accepted, none used).
    #[serde(default)]
    pub parameters: Option<serde_json::Map<String, Value>>,
}

/// One output tensor of a V2 response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputTensor {
    /// Which output.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its datatype.
    pub datatype: &'static str,
    /// Its elements, row-major.
    pub data: Vec<Value>,
}

/// The binary tensor extension (Triton's): the body is the JSON request (`json_len` bytes, the
/// `Inference-Header-Content-Length` header), then the raw data of every input whose
/// `parameters.binary_data_size` says so, in input order. Each such input's `data` is filled
/// from its bytes (little-endian numbers, `BOOL` one byte each, `BYTES` as 4-byte little-endian
/// lengths followed by the bytes).
pub fn parse_binary(body: &[u8], json_len: usize) -> Result<InferRequest> {
    let Some((head, mut rest)) = (json_len <= body.len()).then(|| body.split_at(json_len)) else {
        return Err(RequestError::bad(format!(
            "Inference-Header-Content-Length is {json_len}, but the body holds {} bytes",
            body.len()
        )));
    };
    let mut req: InferRequest = parse_json(head)?;
    for (i, input) in req.inputs.iter_mut().enumerate() {
        let Some(size) = input.parameters.as_ref().and_then(|p| p.get("binary_data_size")) else {
            if input.data.is_null() {
                return Err(RequestError::bad(format!("inputs[{i}]: missing field `data` (or binary_data_size)")));
            }
            continue;
        };
        let size = size
            .as_u64()
            .ok_or_else(|| RequestError::bad(format!("inputs[{i}].parameters.binary_data_size: not a byte count")))?
            as usize;
        if size > rest.len() {
            return Err(RequestError::bad(format!(
                "inputs[{i}]: binary_data_size is {size} bytes, only {} remain in the body",
                rest.len()
            )));
        }
        let (bytes, tail) = rest.split_at(size);
        rest = tail;
        input.data =
            decode_binary(bytes, &input.datatype).map_err(|m| RequestError::bad(format!("inputs[{i}]: {m}")))?;
    }
    if !rest.is_empty() {
        return Err(RequestError::bad(format!(
            "{} bytes of binary data follow the inputs' declared sizes",
            rest.len()
        )));
    }
    Ok(req)
}

fn decode_binary(b: &[u8], datatype: &str) -> std::result::Result<Value, String> {
    macro_rules! numbers {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            if !b.len().is_multiple_of(N) {
                return Err(format!("{} bytes are not a whole number of {datatype} values", b.len()));
            }
            b.chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    serde_json::json!(<$t>::from_le_bytes(a))
                })
                .collect()
        }};
    }
    let values: Vec<Value> = match datatype {
        "FP32" => numbers!(f32),
        "FP64" => numbers!(f64),
        "INT8" => numbers!(i8),
        "INT16" => numbers!(i16),
        "INT32" => numbers!(i32),
        "INT64" => numbers!(i64),
        "UINT8" => numbers!(u8),
        "UINT16" => numbers!(u16),
        "UINT32" => numbers!(u32),
        "UINT64" => numbers!(u64),
        "BOOL" => b.iter().map(|&x| Value::Bool(x != 0)).collect(),
        "BYTES" => {
            let mut out = Vec::new();
            let mut at = 0;
            while at < b.len() {
                let len = b.get(at..at + 4).map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize);
                let Some(len) = len.filter(|l| at + 4 + l <= b.len()) else {
                    return Err(format!("BYTES element {} is cut short (4-byte length, then the bytes)", out.len()));
                };
                let s = std::str::from_utf8(&b[at + 4..at + 4 + len])
                    .map_err(|_| format!("BYTES element {} is not UTF-8 text", out.len()))?;
                out.push(Value::String(s.to_string()));
                at += 4 + len;
            }
            out
        }
        other => {
            return Err(format!(
                "binary data of datatype {other} is not read (FP32, FP64, INT*, UINT*, BOOL, BYTES are)"
            ));
        }
    };
    Ok(Value::Array(values))
}

/// Whether the response should carry `name` as binary data: the output's
/// `parameters.binary_data`, else the request's `parameters.binary_data_output`.
pub fn wants_binary(req: &InferRequest, name: &str) -> bool {
    let flag = |p: &Option<serde_json::Map<String, Value>>, k: &str| {
        p.as_ref().and_then(|m| m.get(k)).and_then(Value::as_bool)
    };
    let per_output =
        req.outputs.iter().flatten().find(|o| o.name == name).and_then(|o| flag(&o.parameters, "binary_data"));
    per_output.or_else(|| flag(&req.parameters, "binary_data_output")).unwrap_or(false)
}

/// An output's data as bytes of the binary tensor extension.
pub fn encode_binary(t: &OutputTensor) -> Vec<u8> {
    let mut out = Vec::new();
    for v in &t.data {
        match (t.datatype, v) {
            ("BYTES", v) => {
                let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            ("BOOL", v) => out.push(u8::from(v.as_bool().unwrap_or(false))),
            ("FP64", v) => out.extend_from_slice(&v.as_f64().unwrap_or(f64::NAN).to_le_bytes()),
            ("INT64", v) => out.extend_from_slice(&v.as_i64().unwrap_or(0).to_le_bytes()),
            (_, v) => out.extend_from_slice(&(v.as_f64().unwrap_or(f64::NAN) as f32).to_le_bytes()),
        }
    }
    out
}

/// Parses a JSON body into `T`, naming the path of the first problem.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    if body.is_empty() {
        return Err(RequestError::bad("empty body: expected a JSON object"));
    }
    // serde reads a struct from an array too, which would name a confusing field: say what
    // the top level should be.
    let got = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Some("only whitespace"),
        Some(b'[') => Some("an array"),
        Some(b'"') => Some("a string"),
        Some(b'-' | b'0'..=b'9') => Some("a number"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'n') => Some("null"),
        _ => None,
    };
    if let Some(got) = got {
        return Err(RequestError::bad(format!("the request body must be a JSON object ({{…}}), got {got}")));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut path = e.path().to_string();
        let inner = e.into_inner();
        if inner.to_string().starts_with("unknown field") {
            // The path ends in the unknown key itself: name the object that holds it.
            path = path.rsplit_once('.').map_or(".".into(), |(parent, _)| parent.to_string());
        }
        if inner.to_string().starts_with("recursion limit exceeded") {
            RequestError::bad(format!(
                "the JSON is nested too deeply (more than 128 levels): {inner}; tensors take flat or shaped \
                 `data` with at most a few levels"
            ))
        } else if inner.is_syntax() || inner.is_eof() {
            RequestError::bad(format!("malformed JSON: {inner}"))
        } else if path == "." {
            RequestError::bad(format!("invalid request: {inner}"))
        } else {
            RequestError::bad(format!("{path}: {inner}"))
        }
    })
}

const NUMERIC_TYPES: [&str; 12] =
    ["FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "BF16"];
const ALL_TYPES: [&str; 14] = [
    "BOOL", "BYTES", "FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
    "BF16",
];

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// Checks a tensor's datatype and shape against its elements; returns the shape as sizes.
fn tensor_elements<'a>(input: &'a InferInput, key: &str) -> Result<(Vec<usize>, Vec<&'a Value>)> {
    if !ALL_TYPES.contains(&input.datatype.as_str()) {
        return Err(RequestError::bad(format!(
            "{key}.datatype: unknown datatype `{}` (the protocol's are {})",
            input.datatype,
            ALL_TYPES.join(", ")
        )));
    }
    let mut shape = Vec::with_capacity(input.shape.len());
    for (i, &d) in input.shape.iter().enumerate() {
        let d = usize::try_from(d)
            .map_err(|_| RequestError::bad(format!("{key}.shape[{i}]: {d} is negative; give the actual size")))?;
        shape.push(d);
    }
    let mut data = Vec::new();
    flatten(&input.data, &mut data);
    let expected: usize = shape.iter().product();
    if data.len() != expected {
        return Err(RequestError::bad(format!(
            "{key}: shape {:?} has {expected} elements, data has {}",
            input.shape,
            data.len()
        )));
    }
    Ok((shape, data))
}

/// Why a finite `f64` that overflows `f32` is refused (models compute in `f32`).
const F32_RANGE: &str = "is too large for the model, which computes in 32-bit floats (at most about 3.4e38)";

/// One numeric element as `f64`: finite numbers; for integer datatypes, integers in range.
fn number(v: &Value, datatype: &str, at: impl Fn() -> String) -> Result<f64> {
    let x =
        v.as_f64().ok_or_else(|| RequestError::bad(format!("{}: {v} is not a number (datatype {datatype})", at())))?;
    if !x.is_finite() {
        return Err(RequestError::bad(format!("{}: {x} is not a finite number", at())));
    }
    if !(x as f32).is_finite() {
        return Err(RequestError::bad(format!("{}: {v} {F32_RANGE}", at())));
    }
    if datatype.starts_with("INT") || datatype.starts_with("UINT") {
        if x.fract() != 0.0 {
            return Err(RequestError::bad(format!("{}: {v} is not an integer (datatype {datatype})", at())));
        }
        if datatype.starts_with('U') && x < 0.0 {
            return Err(RequestError::bad(format!("{}: {v} is negative (datatype {datatype})", at())));
        }
    }
    Ok(x)
}

fn pixel(x: f64, at: impl Fn() -> String) -> Result<f32> {
    if !(0.0..=255.0).contains(&x) {
        return Err(RequestError::bad(format!(
            "{}: {x} is not a pixel value: inputs are raw 8-bit pixels 0–255 (the model applies its own scaling)",
            at()
        )));
    }
    Ok(x as f32)
}

fn names(columns: &[Feature]) -> String {
    columns.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", ")
}

/// Reads the inputs of a V2 request in the layout `raw` (see the module docs).
pub fn infer_inputs(req: &InferRequest, raw: &RawSchema) -> Result<RawInputs> {
    match raw {
        RawSchema::Audio { sample_rate, samples, align } => {
            let input = match &req.inputs[..] {
                [one] if one.name == "waveform" => one,
                [one] => {
                    return Err(RequestError::bad(format!(
                        "inputs[0].name: unknown input `{}`: this audio model reads one input, `waveform`",
                        one.name
                    )));
                }
                other => {
                    return Err(RequestError::bad(format!(
                        "inputs: {} tensors given, this audio model reads one, `waveform`",
                        other.len()
                    )));
                }
            };
            let (shape, data) = tensor_elements(input, "inputs[0]")?;
            if !input.datatype.starts_with("FP") {
                return Err(RequestError::bad(format!(
                    "inputs[0].datatype: `waveform` holds samples in [-1, 1] (FP32 or FP64), got {}",
                    input.datatype
                )));
            }
            let n = match shape[..] {
                [n, s] if s == *samples && n > 0 => n,
                _ => {
                    return Err(RequestError::bad(format!(
                        "inputs[0].shape: {:?} does not fit this model, which takes [n, {samples}] with n ≥ 1 \
                         ({samples} samples at {sample_rate} Hz; send recordings of other lengths or rates to \
                         the predict endpoint as {{\"audio\": \"<base64 WAV>\"}})",
                        input.shape
                    )));
                }
            };
            let values = data
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let at = || format!("inputs[0].data[{i}]");
                    let x = number(v, &input.datatype, at)?;
                    if x.abs() > 1.0 {
                        return Err(RequestError::bad(format!("{}: {x} is not an audio sample in [-1, 1]", at())));
                    }
                    Ok(x as f32)
                })
                .collect::<Result<Vec<f32>>>()?;
            let duration = *samples as f32 / *sample_rate as f32;
            Ok(RawInputs::Audio(AudioSet {
                sample_rate: *sample_rate,
                samples: *samples,
                align: *align,
                values,
                durations: vec![duration; n],
            }))
        }
        RawSchema::Image { channels, height, width } => {
            let (c, h, w) = (*channels, *height, *width);
            let input = match &req.inputs[..] {
                [one] if one.name == "pixels" => one,
                [one] => {
                    return Err(RequestError::bad(format!(
                        "inputs[0].name: unknown input `{}`: this image model reads one input, `pixels`",
                        one.name
                    )));
                }
                other => {
                    return Err(RequestError::bad(format!(
                        "inputs: {} tensors given, this image model reads one, `pixels`",
                        other.len()
                    )));
                }
            };
            let (shape, data) = tensor_elements(input, "inputs[0]")?;
            if !NUMERIC_TYPES.contains(&input.datatype.as_str()) {
                return Err(RequestError::bad(format!(
                    "inputs[0].datatype: `pixels` is numeric, got {}",
                    input.datatype
                )));
            }
            let ok = match shape[..] {
                [_, a, b, d] => (a, b, d) == (c, h, w),
                [_, a, b] => c == 1 && (a, b) == (h, w),
                [_, a] => a == c * h * w,
                _ => false,
            };
            let n = shape.first().copied().unwrap_or(0);
            if !ok || n == 0 {
                return Err(RequestError::bad(format!(
                    "inputs[0].shape: {:?} does not fit this model, which takes [n, {c}, {h}, {w}] or [n, {}] with n ≥ 1",
                    req.inputs[0].shape,
                    c * h * w
                )));
            }
            let pixels = data
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let at = || format!("inputs[0].data[{i}]");
                    pixel(number(v, &input.datatype, at)?, at)
                })
                .collect::<Result<Vec<f32>>>()?;
            Ok(RawInputs::Images(ImageSet { channels: c, height: h, width: w, pixels }))
        }
        RawSchema::Table { columns } => {
            for (i, input) in req.inputs.iter().enumerate() {
                if !columns.iter().any(|c| c.name == input.name) {
                    return Err(RequestError::bad(format!(
                        "inputs[{i}].name: unknown input `{}`: the model reads {}",
                        input.name,
                        names(columns)
                    )));
                }
                if req.inputs[..i].iter().any(|o| o.name == input.name) {
                    return Err(RequestError::bad(format!("inputs[{i}].name: input `{}` given twice", input.name)));
                }
            }
            let mut rows = None;
            let mut out = Vec::with_capacity(columns.len());
            for col in columns {
                let Some((i, input)) = req.inputs.iter().enumerate().find(|(_, inp)| inp.name == col.name) else {
                    return Err(RequestError::bad(format!(
                        "inputs: missing input `{}`: the model reads {}",
                        col.name,
                        names(columns)
                    )));
                };
                let key = format!("inputs[{i}]");
                let (shape, data) = tensor_elements(input, &key)?;
                let n = match shape[..] {
                    [n] | [n, 1] if n > 0 => n,
                    _ => {
                        return Err(RequestError::bad(format!(
                            "{key}.shape: {:?}: a column input is [n] or [n, 1] with n ≥ 1",
                            input.shape
                        )));
                    }
                };
                if *rows.get_or_insert(n) != n {
                    return Err(RequestError::bad(format!(
                        "{key}.shape: {n} rows, but an earlier input has {}",
                        rows.unwrap_or_default()
                    )));
                }
                let dt = input.datatype.as_str();
                let values = match col.kind {
                    FeatureKind::Numeric | FeatureKind::Boolean => {
                        let wanted =
                            if col.kind == FeatureKind::Boolean { "BOOL or a numeric type" } else { "numeric" };
                        if !(NUMERIC_TYPES.contains(&dt) || dt == "BOOL") {
                            return Err(RequestError::bad(format!(
                                "{key}.datatype: `{}` is {wanted}, got {dt}",
                                col.name
                            )));
                        }
                        Values::Numbers(
                            data.iter()
                                .enumerate()
                                .map(|(j, v)| {
                                    let at = || format!("{key}.data[{j}]");
                                    match v {
                                        Value::Null => Ok(f64::NAN),
                                        Value::Bool(b) if dt == "BOOL" => Ok(f64::from(u8::from(*b))),
                                        _ if dt == "BOOL" => {
                                            Err(RequestError::bad(format!("{}: {v} is not a boolean", at())))
                                        }
                                        _ => number(v, dt, at),
                                    }
                                })
                                .collect::<Result<_>>()?,
                        )
                    }
                    FeatureKind::Categorical | FeatureKind::Text => {
                        if dt != "BYTES" {
                            return Err(RequestError::bad(format!(
                                "{key}.datatype: `{}` holds strings (BYTES), got {dt}",
                                col.name
                            )));
                        }
                        Values::Strings(
                            data.iter()
                                .enumerate()
                                .map(|(j, v)| match v {
                                    Value::Null => Ok(None),
                                    Value::String(s) if is_missing_marker(s) => Ok(None),
                                    Value::String(s) => Ok(Some(s.as_str().into())),
                                    other => Err(RequestError::bad(format!(
                                        "{key}.data[{j}]: {other} is not a string (datatype BYTES)"
                                    ))),
                                })
                                .collect::<Result<_>>()?,
                        )
                    }
                };
                out.push(Column { name: col.name.clone(), kind: col.kind, values });
            }
            Ok(RawInputs::Table(Table { columns: out }))
        }
    }
}

/// Checks that every output asked for is one of `outputs` (before any work is done).
pub fn check_outputs(outputs: &[TensorSpec], wanted: Option<&[RequestedOutput]>) -> Result<()> {
    for (i, w) in wanted.unwrap_or_default().iter().enumerate() {
        if !outputs.iter().any(|o| o.name == w.name) {
            return Err(RequestError::bad(format!(
                "outputs[{i}].name: unknown output `{}`: the model gives {}",
                w.name,
                outputs.iter().map(|o| format!("`{}`", o.name)).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(())
}

/// The outputs of a V2 response for `preds`, restricted to `wanted` when given.
pub fn infer_outputs(
    task: &Task,
    preds: &Predictions,
    wanted: Option<&[RequestedOutput]>,
) -> Result<Vec<OutputTensor>> {
    let n = preds.len();
    let mut all = Vec::new();
    match (preds, task) {
        (Predictions::Classes { probs, classes }, Task::Classification { labels }) => {
            let best = preds.argmax().unwrap_or_default();
            all.push(OutputTensor {
                name: "label".into(),
                shape: vec![n],
                datatype: "BYTES",
                data: best.iter().map(|&b| Value::String(labels[b as usize].clone())).collect(),
            });
            all.push(OutputTensor {
                name: "probabilities".into(),
                shape: vec![n, *classes],
                datatype: "FP32",
                data: probs.iter().map(|&p| Value::from(p)).collect(),
            });
        }
        (Predictions::Values(v), Task::Forecast { horizon }) => {
            all.push(OutputTensor {
                name: "forecast".into(),
                shape: vec![v.len() / horizon.max(&1), *horizon],
                datatype: "FP32",
                data: v.iter().map(|&x| Value::from(x)).collect(),
            });
        }
        (Predictions::Values(v), _) => {
            all.push(OutputTensor {
                name: "value".into(),
                shape: vec![n],
                datatype: "FP32",
                data: v.iter().map(|&x| Value::from(x)).collect(),
            });
        }
        _ => return Err(RequestError { status: 500, message: "predictions do not match the model's task".into() }),
    }
    let Some(wanted) = wanted else { return Ok(all) };
    wanted
        .iter()
        .enumerate()
        .map(|(i, w)| {
            all.iter().find(|o| o.name == w.name).cloned().ok_or_else(|| {
                RequestError::bad(format!(
                    "outputs[{i}].name: unknown output `{}`: the model gives {}",
                    w.name,
                    all.iter().map(|o| format!("`{}`", o.name)).collect::<Vec<_>>().join(", ")
                ))
            })
        })
        .collect()
}

/// The body of `POST /v1/models/{name}/predict`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// The records: objects of named fields (table models), strings (single-text models),
    /// `{"image": "<base64 PNG / JPEG>"}` (image models), or `{"audio": "<base64 WAV / FLAC /
    /// Ogg / MP3>"}` (audio models).
    pub instances: Vec<Value>,
}

/// The base64 text of a one-field record `{"<field>": "<what>"}` (image and audio records),
/// or why `inst` (at `at`) is not one.
fn base64_field<'a>(inst: &'a Value, at: &str, field: &str, what: &str) -> Result<&'a str> {
    let Value::Object(o) = inst else {
        return Err(RequestError::bad(format!("{at}: expected {{\"{field}\": \"<{what}>\"}}, got {}", kind_of(inst))));
    };
    if let Some(k) = o.keys().find(|k| *k != field) {
        return Err(RequestError::bad(format!(
            "{at}: unknown field `{k}`: an {field} record is {{\"{field}\": \"<{what}>\"}}"
        )));
    }
    match o.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => {
            Err(RequestError::bad(format!("{at}.{field}: expected a base64 string, got {}", kind_of(other))))
        }
        None => Err(RequestError::bad(format!("{at}: missing field `{field}` (a {what})"))),
    }
}

/// The bytes of a base64 field (a `data:` URL prefix allowed).
fn base64_payload(text: &str, at: &str) -> Result<Vec<u8>> {
    let b64 = match text.strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map(|(_, d)| d).unwrap_or(rest),
        None => text,
    };
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| RequestError::bad(format!("{at}: not valid base64: {e}")))
}

/// Decodes a base64 image (optionally a `data:image/…;base64,` URL) into `channels × height ×
/// width` pixels, resized to the model's size as training resized image folders.
fn decode_image(text: &str, raw: (usize, usize, usize), at: &str) -> Result<Vec<f32>> {
    let (c, h, w) = raw;
    let bytes = base64_payload(text, at)?;
    let (pixels, _, _) = data_ingest::images::decode(&bytes, c, Some((h, w)))
        .map_err(|e| RequestError::bad(format!("{at}: {e} (PNG, JPEG or BMP expected)")))?;
    Ok(pixels)
}

/// Whether a string field is a missing value: one of the markers that the CSV reader of
/// training and `dlp predict` takes as missing ([`data_ingest::table::DEFAULT_MISSING`]:
/// `""`, `NA`, `NaN`, `null`, …), so a record means the same in a file and in a request.
fn is_missing_marker(s: &str) -> bool {
    data_ingest::table::DEFAULT_MISSING.contains(&s.trim())
}

/// A table field's value as a number (`NaN` for missing), or an error.
fn field_number(v: &Value, kind: FeatureKind, at: &str) -> Result<f64> {
    let parsed = match (v, kind) {
        (Value::Null, _) => return Ok(f64::NAN),
        (Value::Bool(b), FeatureKind::Boolean) => Some(f64::from(u8::from(*b))),
        (Value::Number(n), _) => n.as_f64(),
        (Value::String(s), _) if is_missing_marker(s) => return Ok(f64::NAN),
        (Value::String(s), FeatureKind::Boolean) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "t" | "y" | "1" => Some(1.0),
            "false" | "no" | "f" | "n" | "0" => Some(0.0),
            _ => None,
        },
        (Value::String(s), _) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let what = if kind == FeatureKind::Boolean { "a boolean" } else { "a number" };
    match parsed {
        Some(x) if x.is_finite() && !(x as f32).is_finite() => Err(RequestError::bad(format!("{at}: {v} {F32_RANGE}"))),
        Some(x) if x.is_finite() => {
            if kind == FeatureKind::Boolean && x != 0.0 && x != 1.0 {
                Err(RequestError::bad(format!("{at}: {v} is not {what}")))
            } else {
                Ok(x)
            }
        }
        Some(_) => Err(RequestError::bad(format!("{at}: {v} is not a finite number"))),
        None => Err(RequestError::bad(format!("{at}: {v} is not {what}"))),
    }
}

fn field_string(v: &Value, at: &str) -> Result<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if is_missing_marker(s) => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(RequestError::bad(format!("{at}: {other} is not a string"))),
    }
}

/// Whether a `predict` body for a model that reads `raw` is a recording uploaded as it is
/// (`curl --data-binary @clip.wav`): audio models only, and anything that is not a JSON object
/// (recordings start with `RIFF`, `fLaC`, `OggS`, `ID3` or an MP3 frame, never `{`).
pub fn is_recording_upload(body: &[u8], raw: &RawSchema) -> bool {
    matches!(raw, RawSchema::Audio { .. }) && body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|&b| b != b'{')
}

/// One uploaded recording (the whole body) as the model's input, decoded as in training.
pub fn recording_inputs(body: &[u8], raw: &RawSchema) -> Result<RawInputs> {
    let RawSchema::Audio { sample_rate, samples, align } = raw else {
        return Err(RequestError::bad("only audio models take a recording as the request body"));
    };
    let (clip, duration) = data_ingest::audio::clip_from_bytes(body, None, *sample_rate, *samples, *align)
        .map_err(|e| RequestError::bad(format!("the uploaded recording: {e}")))?;
    Ok(RawInputs::Audio(AudioSet {
        sample_rate: *sample_rate,
        samples: *samples,
        align: *align,
        values: clip,
        durations: vec![duration],
    }))
}

/// Reads the records of a `predict` request in the layout `raw`.
pub fn predict_inputs(req: &PredictRequest, raw: &RawSchema) -> Result<RawInputs> {
    if req.instances.is_empty() {
        return Err(RequestError::bad("instances: empty: give at least one record"));
    }
    match raw {
        RawSchema::Audio { sample_rate, samples, align } => {
            let mut values = Vec::with_capacity(req.instances.len() * samples);
            let mut durations = Vec::with_capacity(req.instances.len());
            for (i, inst) in req.instances.iter().enumerate() {
                let at = format!("instances[{i}]");
                let text = base64_field(inst, &at, "audio", "base64 WAV, FLAC, Ogg or MP3")?;
                let bytes = base64_payload(text, &format!("{at}.audio"))?;
                let (clip, duration) =
                    data_ingest::audio::clip_from_bytes(&bytes, None, *sample_rate, *samples, *align)
                        .map_err(|e| RequestError::bad(format!("{at}.audio: {e}")))?;
                values.extend(clip);
                durations.push(duration);
            }
            Ok(RawInputs::Audio(AudioSet {
                sample_rate: *sample_rate,
                samples: *samples,
                align: *align,
                values,
                durations,
            }))
        }
        RawSchema::Image { channels, height, width } => {
            let mut pixels = Vec::with_capacity(req.instances.len() * channels * height * width);
            for (i, inst) in req.instances.iter().enumerate() {
                let at = format!("instances[{i}]");
                let text = base64_field(inst, &at, "image", "base64 PNG or JPEG")?;
                pixels.extend(decode_image(text, (*channels, *height, *width), &format!("{at}.image"))?);
            }
            Ok(RawInputs::Images(ImageSet { channels: *channels, height: *height, width: *width, pixels }))
        }
        RawSchema::Table { columns } => {
            let single_text = columns.len() == 1 && columns[0].kind == FeatureKind::Text;
            let n = req.instances.len();
            let mut cols: Vec<Column> = columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    kind: c.kind,
                    values: if RawSchema::numeric(c.kind) {
                        Values::Numbers(Vec::with_capacity(n))
                    } else {
                        Values::Strings(Vec::with_capacity(n))
                    },
                })
                .collect();
            for (i, inst) in req.instances.iter().enumerate() {
                let at = format!("instances[{i}]");
                let obj = match inst {
                    Value::Object(o) => o,
                    Value::String(s) if single_text => {
                        if let Values::Strings(v) = &mut cols[0].values {
                            v.push(Some(s.as_str().into()));
                        }
                        continue;
                    }
                    other => {
                        return Err(RequestError::bad(format!(
                            "{at}: expected an object of named fields ({}){}, got {}",
                            names(columns),
                            if single_text { " or a string" } else { "" },
                            kind_of(other)
                        )));
                    }
                };
                if let Some(k) = obj.keys().find(|k| !columns.iter().any(|c| &c.name == *k)) {
                    return Err(RequestError::bad(format!(
                        "{at}: unknown field `{k}`: the model reads {}",
                        names(columns)
                    )));
                }
                for col in &mut cols {
                    let v = obj.get(&col.name).ok_or_else(|| {
                        RequestError::bad(format!(
                            "{at}: missing field `{}` (null for a missing value): the model reads {}",
                            col.name,
                            names(columns)
                        ))
                    })?;
                    let at = format!("{at}.{}", col.name);
                    match &mut col.values {
                        Values::Numbers(out) => out.push(field_number(v, col.kind, &at)?),
                        Values::Strings(out) => out.push(field_string(v, &at)?.map(Into::into)),
                    }
                }
            }
            Ok(RawInputs::Table(Table { columns: cols }))
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One record's prediction in a `predict` response.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Prediction {
    /// Classification.
    Class {
        /// The most probable class.
        label: String,
        /// Its probability.
        confidence: f32,
        /// Every class's probability, in the order of the response's `labels`.
        probabilities: Vec<f32>,
    },
    /// Regression.
    Value {
        /// The predicted value, in target units.
        value: f32,
    },
    /// Forecasting: one series' forecast.
    Forecast {
        /// The values of the steps ahead, in target units.
        steps: Vec<f32>,
    },
}

/// The records' predictions for a `predict` response.
pub fn predictions(task: &Task, preds: &Predictions) -> Vec<Prediction> {
    match (preds, task) {
        (Predictions::Classes { probs, classes }, Task::Classification { labels }) => {
            let best = preds.argmax().unwrap_or_default();
            probs
                .chunks_exact((*classes).max(1))
                .zip(best)
                .map(|(row, b)| Prediction::Class {
                    label: labels[b as usize].clone(),
                    confidence: row[b as usize],
                    probabilities: row.to_vec(),
                })
                .collect()
        }
        (Predictions::Values(v), Task::Forecast { horizon }) => {
            v.chunks((*horizon).max(1)).map(|steps| Prediction::Forecast { steps: steps.to_vec() }).collect()
        }
        (Predictions::Values(v), _) => v.iter().map(|&value| Prediction::Value { value }).collect(),
        _ => Vec::new(),
    }
}

/// One step of a forecast, with its time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastStep {
    /// The forecast time: the time column's next values (numeric times with a constant step),
    /// or `+1`, `+2`, … after the last history row.
    pub time: String,
    /// Steps ahead (1 = the next).
    pub step: usize,
    /// The forecast value, in the target's units.
    pub value: f32,
}

/// A forecasting model's steps, labelled with their times (`preds`: one forecast).
pub fn forecast_steps(
    transform: &preprocess::series::SeriesTransform,
    inputs: &RawInputs,
    preds: &Predictions,
) -> Vec<ForecastStep> {
    let last = match inputs {
        RawInputs::Table(t) => transform.window(t).ok().map(|(_, last)| last),
        _ => None,
    };
    let Predictions::Values(v) = preds else { return Vec::new() };
    transform
        .forecast_times(last.as_deref())
        .into_iter()
        .zip(v)
        .enumerate()
        .map(|(j, (time, &value))| ForecastStep { time, step: j + 1, value })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RawSchema {
        RawSchema::Table {
            columns: vec![
                Feature { name: "x".into(), kind: FeatureKind::Numeric },
                Feature { name: "color".into(), kind: FeatureKind::Categorical },
                Feature { name: "ok".into(), kind: FeatureKind::Boolean },
            ],
        }
    }

    fn err(body: &str, raw: &RawSchema) -> String {
        let req: PredictRequest = parse_json(body.as_bytes()).unwrap();
        predict_inputs(&req, raw).unwrap_err().message
    }

    #[test]
    fn table_records_are_read_by_name_with_missing_values() {
        let req: PredictRequest = parse_json(
            br#"{"instances": [{"x": 1.5, "color": "red", "ok": true}, {"ok": "no", "color": null, "x": "2"}]}"#,
        )
        .unwrap();
        let RawInputs::Table(t) = predict_inputs(&req, &table()).unwrap() else { panic!("table") };
        assert_eq!(t.columns[0].values, Values::Numbers(vec![1.5, 2.0]));
        assert_eq!(t.columns[1].values, Values::Strings(vec![Some("red".into()), None]));
        assert_eq!(t.columns[2].values, Values::Numbers(vec![1.0, 0.0]));
    }

    #[test]
    fn missing_markers_are_missing_as_in_a_csv() {
        // `dlp predict` reads "NaN", "NA", "" … in a CSV as missing (imputed); a request
        // must mean the same.
        let req: PredictRequest = parse_json(
            br#"{"instances": [{"x": "NaN", "color": "NA", "ok": ""}, {"x": " null ", "color": "?", "ok": "None"}]}"#,
        )
        .unwrap();
        let RawInputs::Table(t) = predict_inputs(&req, &table()).unwrap() else { panic!("table") };
        assert!(t.columns[0].values.is_missing(0) && t.columns[0].values.is_missing(1));
        assert_eq!(t.columns[1].values, Values::Strings(vec![None, None]));
        assert!(t.columns[2].values.is_missing(0) && t.columns[2].values.is_missing(1));
        for v in data_ingest::table::DEFAULT_MISSING {
            assert!(is_missing_marker(v), "{v:?}");
        }
        assert!(!is_missing_marker("nil") && !is_missing_marker("0"));
    }

    #[test]
    fn bad_records_say_what_is_wrong() {
        let t = table();
        assert_eq!(
            err(r#"{"instances": [{"x": 1, "color": "a"}]}"#, &t),
            "instances[0]: missing field `ok` (null for a missing value): the model reads `x`, `color`, `ok`"
        );
        assert_eq!(
            err(r#"{"instances": [{"x": 1, "color": "a", "ok": 1, "y": 2}]}"#, &t),
            "instances[0]: unknown field `y`: the model reads `x`, `color`, `ok`"
        );
        assert_eq!(
            err(r#"{"instances": [{"x": "inf", "color": "a", "ok": 1}]}"#, &t),
            r#"instances[0].x: "inf" is not a finite number"#
        );
        assert_eq!(
            err(r#"{"instances": [{"x": "abc", "color": "a", "ok": 1}]}"#, &t),
            r#"instances[0].x: "abc" is not a number"#
        );
        assert_eq!(
            err(r#"{"instances": [{"x": 1, "color": "a", "ok": 3}]}"#, &t),
            "instances[0].ok: 3 is not a boolean"
        );
        assert_eq!(err(r#"{"instances": []}"#, &t), "instances: empty: give at least one record");
        assert_eq!(
            err(r#"{"instances": [7]}"#, &t),
            "instances[0]: expected an object of named fields (`x`, `color`, `ok`), got a number"
        );
        let e = parse_json::<PredictRequest>(br#"{"instances": [1,}"#).unwrap_err();
        assert!(e.message.starts_with("malformed JSON: "), "{}", e.message);
        let e = parse_json::<PredictRequest>(br#"{"records": []}"#).unwrap_err();
        assert!(e.message.contains("unknown field `records`"), "{}", e.message);
        // Out-of-range numbers are not a JSON float serde_json reads.
        let e = parse_json::<PredictRequest>(br#"{"instances": [{"x": 1e999}]}"#).unwrap_err();
        assert!(e.message.contains("number out of range"), "{}", e.message);
        // The top level must be an object: an array is not read as the struct's fields.
        for (body, got) in [
            (&br#"[{"x": 1}]"#[..], "an array"),
            (br#"  [[[["a"]]]]"#, "an array"),
            (br#""instances""#, "a string"),
            (b"42", "a number"),
            (b"true", "a boolean"),
            (b"null", "null"),
            (b" \n ", "only whitespace"),
        ] {
            assert_eq!(
                parse_json::<PredictRequest>(body).unwrap_err().message,
                format!("the request body must be a JSON object ({{…}}), got {got}")
            );
            assert_eq!(
                parse_json::<InferRequest>(body).unwrap_err().message,
                format!("the request body must be a JSON object ({{…}}), got {got}")
            );
        }
        // Nesting past serde_json's limit is named as such.
        let deep = format!(r#"{{"instances": [{}{}]}}"#, "[".repeat(200), "]".repeat(200));
        let e = parse_json::<PredictRequest>(deep.as_bytes()).unwrap_err();
        assert!(e.message.starts_with("the JSON is nested too deeply (more than 128 levels)"), "{}", e.message);
    }

    #[test]
    fn v2_tensors_are_checked_for_shape_datatype_and_values() {
        let img = RawSchema::Image { channels: 1, height: 2, width: 2 };
        let parse = |body: &str| parse_json::<InferRequest>(body.as_bytes()).unwrap();
        let ok = parse(
            r#"{"inputs": [{"name": "pixels", "shape": [2, 4], "datatype": "UINT8", "data": [[0,1,2,3],[4,5,6,255]]}]}"#,
        );
        let RawInputs::Images(im) = infer_inputs(&ok, &img).unwrap() else { panic!() };
        assert_eq!(im.pixels.len(), 8);
        let e = |body: &str| infer_inputs(&parse(body), &img).unwrap_err().message;
        assert_eq!(
            e(r#"{"inputs": [{"name": "pixels", "shape": [1, 3], "datatype": "FP32", "data": [1,2,3]}]}"#),
            "inputs[0].shape: [1, 3] does not fit this model, which takes [n, 1, 2, 2] or [n, 4] with n ≥ 1"
        );
        assert_eq!(
            e(r#"{"inputs": [{"name": "pixels", "shape": [1, 4], "datatype": "FP32", "data": [1,2,3]}]}"#),
            "inputs[0]: shape [1, 4] has 4 elements, data has 3"
        );
        assert_eq!(
            e(r#"{"inputs": [{"name": "pixels", "shape": [1, 4], "datatype": "FP33", "data": [1,2,3,4]}]}"#)
                .split(" (")
                .next()
                .unwrap(),
            "inputs[0].datatype: unknown datatype `FP33`"
        );
        assert_eq!(
            e(r#"{"inputs": [{"name": "pixels", "shape": [1, 4], "datatype": "BYTES", "data": ["a","b","c","d"]}]}"#),
            "inputs[0].datatype: `pixels` is numeric, got BYTES"
        );
        assert_eq!(
            e(r#"{"inputs": [{"name": "pixels", "shape": [1, 4], "datatype": "FP32", "data": [1,2,"NaN",4]}]}"#),
            r#"inputs[0].data[2]: "NaN" is not a number (datatype FP32)"#
        );
        assert!(
            e(r#"{"inputs": [{"name": "pixels", "shape": [1, 4], "datatype": "FP32", "data": [1,2,-0.5,4]}]}"#)
                .starts_with("inputs[0].data[2]: -0.5 is not a pixel value")
        );
        assert_eq!(
            e(r#"{"inputs": [{"name": "image", "shape": [1, 4], "datatype": "FP32", "data": [1,2,3,4]}]}"#),
            "inputs[0].name: unknown input `image`: this image model reads one input, `pixels`"
        );
        assert_eq!(
            e(r#"{"inputs": [{"name": "pixels", "shape": [1, -4], "datatype": "FP32", "data": [1,2,3,4]}]}"#),
            "inputs[0].shape[1]: -4 is negative; give the actual size"
        );
    }

    #[test]
    fn v2_table_inputs_match_columns_by_name() {
        let parse = |body: &str| parse_json::<InferRequest>(body.as_bytes()).unwrap();
        let ok = parse(
            r#"{"inputs": [{"name": "ok", "shape": [2], "datatype": "BOOL", "data": [true, false]},
                {"name": "x", "shape": [2, 1], "datatype": "FP64", "data": [[1.5], [null]]},
                {"name": "color", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}"#,
        );
        let RawInputs::Table(t) = infer_inputs(&ok, &table()).unwrap() else { panic!() };
        assert_eq!(t.columns[0].name, "x");
        assert!(t.columns[0].values.is_missing(1));
        let e = |body: &str| infer_inputs(&parse(body), &table()).unwrap_err().message;
        assert_eq!(
            e(r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}"#),
            "inputs: missing input `color`: the model reads `x`, `color`, `ok`"
        );
        assert_eq!(
            e(r#"{"inputs": [{"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]}"#),
            "inputs[0].name: unknown input `z`: the model reads `x`, `color`, `ok`"
        );
        assert_eq!(
            e(r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["1"]},
                {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["a"]},
                {"name": "ok", "shape": [1], "datatype": "BOOL", "data": [true]}]}"#),
            "inputs[0].datatype: `x` is numeric, got BYTES"
        );
        assert_eq!(
            e(r#"{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]},
                {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["a"]},
                {"name": "ok", "shape": [1], "datatype": "BOOL", "data": [true]}]}"#),
            "inputs[1].shape: 1 rows, but an earlier input has 2"
        );
    }

    #[test]
    fn outputs_can_be_chosen() {
        let task = Task::Classification { labels: vec!["a".into(), "b".into()] };
        let preds = Predictions::Classes { probs: vec![0.25, 0.75], classes: 2 };
        let out = infer_outputs(&task, &preds, None).unwrap();
        assert_eq!(out[0].data, vec![Value::from("b")]);
        assert_eq!(out[1].shape, vec![1, 2]);
        let want = [RequestedOutput { name: "probabilities".into(), parameters: None }];
        assert_eq!(infer_outputs(&task, &preds, Some(&want)).unwrap().len(), 1);
        let bad = [RequestedOutput { name: "logits".into(), parameters: None }];
        assert_eq!(
            infer_outputs(&task, &preds, Some(&bad)).unwrap_err().message,
            "outputs[0].name: unknown output `logits`: the model gives `label`, `probabilities`"
        );
    }
}
