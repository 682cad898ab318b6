//! Audio: WAV (PCM 8/16/24/32-bit and float), FLAC, Ogg Vorbis and MP3 decoded with
//! `symphonia`, mixed down to mono, resampled with `rubato` to one rate and padded or cropped
//! to one length; read from class folders (`<folder>/<class>/<clip>`) or listed in a CSV
//! (path, label and optionally the part of an official split), decoded in parallel.

use std::path::{Path, PathBuf};

use pipeline_core::FeatureKind;
pub use pipeline_core::raw::Align;
use pipeline_core::raw::{AudioSet, Column, Part, Values};
use pipeline_core::run::InputFile;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::table::{BadRecord, OnBadRecord, ReadReport};
use crate::text::{class_files, folder_identity};
use crate::{Error, Result};

/// The extensions read (case-insensitive).
pub const EXTENSIONS: [&str; 6] = ["wav", "wave", "flac", "ogg", "oga", "mp3"];

/// The longest clip decoded (ten minutes at 48 kHz): a header declaring more is refused before
/// any sample is decoded, so a small file cannot make a reader allocate gigabytes.
pub const MAX_FRAMES: u64 = 48_000 * 600;

/// How clips are made alike: one rate, one length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioFormat {
    /// The rate every clip is resampled to.
    pub sample_rate: u32,
    /// Clip length in samples at that rate; `None`: the longest clip read (training data only).
    pub samples: Option<usize>,
    /// Where clips are cropped and padded.
    pub align: Align,
}

/// Why one audio file could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not audio in a format read here, or damaged.
    #[error("cannot decode the audio: {0}")]
    Format(String),
    /// The header declares more samples than the stream holds.
    #[error("truncated: the header declares {declared} samples, the file holds {found}")]
    Truncated {
        /// Frames the header declares.
        declared: u64,
        /// Frames decoded.
        found: u64,
    },
    /// No samples at all.
    #[error("the recording holds no samples")]
    Empty,
    /// Longer than [`MAX_FRAMES`].
    #[error("the recording declares {0} samples, more than dlp decodes (at most {MAX_FRAMES}); cut it first")]
    TooLong(u64),
}

/// A decoded recording: mono samples and their rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Mono samples in `[-1, 1]` (channels averaged).
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate: u32,
}

/// Decodes one file's bytes; `extension` (e.g. `"wav"`) helps pick the format.
pub fn decode(bytes: &[u8], extension: Option<&str>) -> std::result::Result<Decoded, DecodeError> {
    let format = |e: &dyn std::fmt::Display| DecodeError::Format(e.to_string());
    if bytes.is_empty() {
        return Err(DecodeError::Format("the file is empty".into()));
    }
    let stream = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes.to_vec())), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(|e| DecodeError::Format(format!("not a readable WAV, FLAC, Ogg or MP3 file ({e})")))?;
    let mut reader = probed.format;
    let track = reader.default_track().ok_or_else(|| DecodeError::Format("no audio track".into()))?;
    let params = track.codec_params.clone();
    let track_id = track.id;
    let sample_rate = params.sample_rate.filter(|&r| r > 0).ok_or_else(|| format(&"no sample rate in the header"))?;
    if let Some(n) = params.n_frames.filter(|&n| n > MAX_FRAMES) {
        return Err(DecodeError::TooLong(n));
    }
    let mut decoder =
        symphonia::default::get_codecs().make(&params, &DecoderOptions::default()).map_err(|e| format(&e))?;
    let mut mono = Vec::new();
    loop {
        let packet = match reader.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format(&e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let buffer = decoder.decode(&packet).map_err(|e| format(&e))?;
        let spec = *buffer.spec();
        let channels = spec.channels.count().max(1);
        let mut interleaved = SampleBuffer::<f32>::new(buffer.capacity() as u64, spec);
        interleaved.copy_interleaved_ref(buffer);
        mono.extend(interleaved.samples().chunks_exact(channels).map(|f| f.iter().sum::<f32>() / channels as f32));
        if mono.len() as u64 > MAX_FRAMES {
            return Err(DecodeError::TooLong(mono.len() as u64));
        }
    }
    // PCM headers declare the exact length: fewer samples means the file was cut short.
    // (Compressed formats declare estimates, so only PCM is held to it.)
    let pcm = {
        use symphonia::core::codecs as c;
        [
            c::CODEC_TYPE_PCM_S32LE,
            c::CODEC_TYPE_PCM_S32BE,
            c::CODEC_TYPE_PCM_S24LE,
            c::CODEC_TYPE_PCM_S24BE,
            c::CODEC_TYPE_PCM_S16LE,
            c::CODEC_TYPE_PCM_S16BE,
            c::CODEC_TYPE_PCM_S8,
            c::CODEC_TYPE_PCM_U32LE,
            c::CODEC_TYPE_PCM_U32BE,
            c::CODEC_TYPE_PCM_U24LE,
            c::CODEC_TYPE_PCM_U24BE,
            c::CODEC_TYPE_PCM_U16LE,
            c::CODEC_TYPE_PCM_U16BE,
            c::CODEC_TYPE_PCM_U8,
            c::CODEC_TYPE_PCM_F32LE,
            c::CODEC_TYPE_PCM_F32BE,
            c::CODEC_TYPE_PCM_F64LE,
            c::CODEC_TYPE_PCM_F64BE,
            c::CODEC_TYPE_PCM_ALAW,
            c::CODEC_TYPE_PCM_MULAW,
        ]
        .contains(&params.codec)
    };
    if let Some(declared) = params.n_frames.filter(|&n| pcm && (mono.len() as u64) < n) {
        return Err(DecodeError::Truncated { declared, found: mono.len() as u64 });
    }
    if mono.is_empty() {
        return Err(DecodeError::Empty);
    }
    if mono.iter().any(|x| !x.is_finite()) {
        return Err(DecodeError::Format("non-finite samples (NaN or infinity)".into()));
    }
    Ok(Decoded { samples: mono, sample_rate })
}

/// Resamples `samples` from rate `from` to rate `to` (windowed-sinc, `rubato`); the output has
/// `round(len × to / from)` samples.
pub fn resample(samples: &[f32], from: u32, to: u32) -> std::result::Result<Vec<f32>, DecodeError> {
    use rubato::{Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction};
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let ratio = f64::from(to) / f64::from(from);
    let params = SincInterpolationParameters {
        sinc_len: 128,
        f_cutoff: 0.95,
        interpolation: SincInterpolationType::Cubic,
        oversampling_factor: 128,
        window: WindowFunction::BlackmanHarris2,
    };
    let out_len = (samples.len() as f64 * ratio).round() as usize;
    let fail = |e: &dyn std::fmt::Display| DecodeError::Format(format!("resampling {from} Hz to {to} Hz: {e}"));
    let chunk = 1024;
    let mut resampler = SincFixedIn::<f64>::new(ratio, 1.0, params, chunk, 1).map_err(|e| fail(&e))?;
    // rubato aligns its output with the input to within a sample; its filter's tail is
    // flushed by feeding zeros.
    let mut out: Vec<f64> = Vec::with_capacity(out_len + chunk);
    let input: Vec<f64> = samples.iter().map(|&x| f64::from(x)).collect();
    let mut pos = 0;
    // Feed whole chunks, then zeros until the delayed tail is out.
    while out.len() < out_len {
        let next = resampler.input_frames_next();
        let mut block = vec![0f64; next];
        let take = next.min(input.len().saturating_sub(pos));
        block[..take].copy_from_slice(&input[pos..pos + take]);
        pos += take;
        let produced = resampler.process(&[block], None).map_err(|e| fail(&e))?;
        out.extend_from_slice(&produced[0]);
    }
    Ok(out[..out_len].iter().map(|&x| x as f32).collect())
}

/// Pads with silence or crops `samples` to `n`, as `align` says.
pub fn fit_length(samples: &[f32], n: usize, align: Align) -> Vec<f32> {
    let len = samples.len();
    let mut out = vec![0f32; n];
    if len >= n {
        let start = match align {
            Align::Start => 0,
            Align::Center => (len - n) / 2,
        };
        out.copy_from_slice(&samples[start..start + n]);
    } else {
        let start = match align {
            Align::Start => 0,
            Align::Center => (n - len) / 2,
        };
        out[start..start + len].copy_from_slice(samples);
    }
    out
}

/// Decodes a file's bytes and brings it to `format`'s rate (the length is fitted later, when all
/// clips of a set are known). Returns the samples at that rate.
pub fn load_clip(bytes: &[u8], extension: Option<&str>, rate: u32) -> std::result::Result<Vec<f32>, DecodeError> {
    let d = decode(bytes, extension)?;
    resample(&d.samples, d.sample_rate, rate)
}

/// Decodes a file's bytes into one clip of `samples` samples at `rate` (resampled, mono, padded or
/// cropped as `align` says), with its recorded duration in seconds: how serving and `dlp predict`
/// read a recording for a bundle.
pub fn clip_from_bytes(
    bytes: &[u8],
    extension: Option<&str>,
    rate: u32,
    samples: usize,
    align: Align,
) -> std::result::Result<(Vec<f32>, f32), DecodeError> {
    let clip = load_clip(bytes, extension, rate)?;
    let duration = clip.len() as f32 / rate as f32;
    Ok((fit_length(&clip, samples, align), duration))
}

/// One decoded clip at the target rate, or why not.
type ClipResult = std::result::Result<Vec<f32>, String>;

/// Clips and their labels.
#[derive(Debug, Clone)]
pub struct AudioRead {
    /// The clips.
    pub audio: AudioSet,
    /// The class of each (folder name or the list's label column).
    pub target: Column,
    /// Each clip's part, when the list names them.
    pub parts: Option<Vec<Part>>,
    /// What was read, for the manifest.
    pub inputs: Vec<InputFile>,
    /// Clips that could not be decoded, when skipped.
    pub report: ReadReport,
}

fn is_audio(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A file to read: where, its label, its part, the line naming it (0 in folders).
struct Entry {
    path: PathBuf,
    label: String,
    part: Option<Part>,
    line: u64,
}

struct Clip {
    entry: Entry,
    digest: [u8; 32],
    bytes: u64,
    result: ClipResult,
}

fn decode_all(entries: Vec<Entry>, rate: u32) -> Vec<Clip> {
    entries
        .into_par_iter()
        .map(|entry| match std::fs::read(&entry.path) {
            Ok(bytes) => {
                let ext = entry.path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
                Clip {
                    digest: Sha256::digest(&bytes).into(),
                    bytes: bytes.len() as u64,
                    result: load_clip(&bytes, ext.as_deref(), rate).map_err(|e| e.to_string()),
                    entry,
                }
            }
            Err(e) => Clip { entry, digest: [0; 32], bytes: 0, result: Err(format!("cannot read: {e}")) },
        })
        .collect()
}

/// Collects decoded clips into an [`AudioSet`]: bad ones fail or are skipped, lengths are made
/// alike.
fn assemble(clips: Vec<Clip>, format: &AudioFormat, on_bad: OnBadRecord, root: &Path) -> Result<AssembledClips> {
    let mut report = ReadReport::default();
    let mut kept = Vec::new();
    let mut ids = Vec::new();
    for Clip { entry, digest, bytes, result } in clips {
        ids.push((entry.path.clone(), digest, bytes));
        match result {
            Ok(samples) => kept.push((entry, samples)),
            Err(reason) => match on_bad {
                OnBadRecord::Fail if entry.line > 0 => {
                    return Err(Error::Record {
                        path: root.to_path_buf(),
                        line: entry.line,
                        message: format!("{}: {reason}", entry.path.display()),
                    });
                }
                OnBadRecord::Fail => return Err(Error::format(&entry.path, reason)),
                OnBadRecord::Skip => {
                    report.bad(BadRecord { file: entry.path.display().to_string(), line: entry.line, reason })
                }
            },
        }
    }
    if kept.is_empty() {
        return Err(Error::format(root, "no recording could be read"));
    }
    let samples = format.samples.unwrap_or_else(|| kept.iter().map(|(_, s)| s.len()).max().unwrap_or(1));
    let mut values = Vec::with_capacity(kept.len() * samples);
    let mut durations = Vec::with_capacity(kept.len());
    let (mut labels, mut parts) = (Vec::new(), Vec::new());
    for (entry, clip) in kept {
        durations.push(clip.len() as f32 / format.sample_rate as f32);
        values.extend(fit_length(&clip, samples, format.align));
        labels.push(Some(entry.label));
        parts.push(entry.part);
    }
    report.records = labels.len();
    let parts = if parts.iter().all(Option::is_some) { Some(parts.into_iter().flatten().collect()) } else { None };
    Ok(AssembledClips {
        audio: AudioSet { sample_rate: format.sample_rate, samples, align: format.align, values, durations },
        target: Column { name: "label".into(), kind: FeatureKind::Categorical, values: Values::from_strings(labels) },
        parts,
        ids,
        report,
    })
}

struct AssembledClips {
    audio: AudioSet,
    target: Column,
    parts: Option<Vec<Part>>,
    ids: Vec<(PathBuf, [u8; 32], u64)>,
    report: ReadReport,
}

/// Reads `root/<class>/<clip>`.
pub fn read_folder(root: &Path, role: &str, format: &AudioFormat, on_bad: OnBadRecord) -> Result<AudioRead> {
    let classes = class_files(root, &is_audio)?;
    let entries = classes
        .into_iter()
        .flat_map(|(label, files)| {
            files.into_iter().map(move |path| Entry { path, label: label.clone(), part: None, line: 0 })
        })
        .collect();
    let a = assemble(decode_all(entries, format.sample_rate), format, on_bad, root)?;
    Ok(AudioRead {
        audio: a.audio,
        target: a.target,
        parts: None,
        inputs: vec![folder_identity(root, role, &a.ids)],
        report: a.report,
    })
}

/// The columns of an audio list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListColumns<'a> {
    /// The column of file paths (relative to the list's folder, or absolute).
    pub file: &'a str,
    /// The column of labels.
    pub label: &'a str,
    /// The column of parts (`train` / `validation` / `test`), if any.
    pub split: Option<&'a str>,
}

/// Reads the clips a CSV lists (header required): one line per clip.
pub fn read_list(
    list: &Path,
    role: &str,
    columns: &ListColumns<'_>,
    format: &AudioFormat,
    on_bad: OnBadRecord,
) -> Result<AudioRead> {
    let bytes = std::fs::read(list).map_err(|e| Error::io(list, e))?;
    let base = list.parent().unwrap_or(Path::new("."));
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes.as_slice());
    let header = reader.headers().map_err(|e| Error::format(list, format!("cannot read the header: {e}")))?.clone();
    let find = |name: &str, key: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| Error::Invalid {
            path: list.to_path_buf(),
            message: format!(
                "no column `{name}` ({key}); the header has {}",
                header.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
            ),
        })
    };
    let file_col = find(columns.file, "data.file_column")?;
    let label_col = find(columns.label, "data.target")?;
    let split_col = columns.split.map(|s| find(s, "data.split_column")).transpose()?;
    let mut entries = Vec::new();
    let mut report = ReadReport::default();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = record.map_err(|e| Error::Record { path: list.to_path_buf(), line, message: e.to_string() })?;
        let field = |c: usize| record.get(c).map(str::trim).filter(|s| !s.is_empty());
        let problem = match (field(file_col), field(label_col)) {
            (None, _) => Err(format!("no file in column `{}`", columns.file)),
            (_, None) => Err(format!("no label in column `{}`", columns.label)),
            (Some(f), Some(l)) => match split_col.map(|c| (field(c), c)) {
                Some((value, _)) => match value.and_then(Part::parse) {
                    Some(p) => Ok((f, l, Some(p))),
                    None => Err(format!(
                        "column `{}`: {:?} is not a part (train, validation or test)",
                        columns.split.unwrap_or_default(),
                        value.unwrap_or("")
                    )),
                },
                None => Ok((f, l, None)),
            },
        };
        match problem {
            Ok((f, l, part)) => entries.push(Entry { path: base.join(f), label: l.to_string(), part, line }),
            Err(message) => match on_bad {
                OnBadRecord::Fail => return Err(Error::Record { path: list.to_path_buf(), line, message }),
                OnBadRecord::Skip => report.bad(BadRecord { file: list.display().to_string(), line, reason: message }),
            },
        }
    }
    let mut a = assemble(decode_all(entries, format.sample_rate), format, on_bad, list)?;
    a.report.merge(ReadReport { records: 0, ..report });
    let mut list_hash = Sha256::new();
    list_hash.update(&bytes);
    let list_file = InputFile {
        role: role.into(),
        path: list.display().to_string(),
        sha256: list_hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        bytes: bytes.len() as u64,
    };
    let clips = folder_identity(base, &format!("{role} (recordings)"), &a.ids);
    Ok(AudioRead { audio: a.audio, target: a.target, parts: a.parts, inputs: vec![list_file, clips], report: a.report })
}

/// A WAV file of 16-bit PCM mono samples (for tests and examples).
pub fn wav_bytes(samples: &[f32], sample_rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for &x in samples {
        out.extend_from_slice(&((x.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, rate: u32, hz: f32) -> Vec<f32> {
        (0..n).map(|i| 0.5 * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin()).collect()
    }

    /// A WAV header with any format fields, then `data`.
    fn wav_with(format: u16, channels: u16, bits: u16, rate: u32, data: &[u8]) -> Vec<u8> {
        let block = channels * bits / 8;
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        for v in [format, channels] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        for v in [block, bits] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn decodes_pcm_widths_float_and_mixes_stereo_down() {
        // 16-bit: the FSDD files' encoding; the value -0.5 is exactly -16384 / 32768.
        let d = decode(&wav_with(1, 1, 16, 8000, &(-16384i16).to_le_bytes().repeat(4)), Some("wav")).unwrap();
        assert_eq!((d.sample_rate, d.samples.len()), (8000, 4));
        assert_eq!(d.samples[0], -0.5);
        // 8-bit PCM is unsigned: 192 is +0.5.
        let d = decode(&wav_with(1, 1, 8, 8000, &[192, 64, 128]), Some("wav")).unwrap();
        assert_eq!(d.samples, vec![0.5, -0.5, 0.0]);
        // 24-bit: 0x400000 is +0.5.
        let d = decode(&wav_with(1, 1, 24, 16000, &[0, 0, 0x40, 0, 0, 0xc0]), Some("wav")).unwrap();
        assert_eq!(d.samples, vec![0.5, -0.5]);
        // 32-bit integer and 32-bit float (format 3).
        let d = decode(&wav_with(1, 1, 32, 8000, &(1i32 << 30).to_le_bytes()), Some("wav")).unwrap();
        assert_eq!(d.samples, vec![0.5]);
        let d = decode(&wav_with(3, 1, 32, 8000, &0.25f32.to_le_bytes()), Some("wav")).unwrap();
        assert_eq!(d.samples, vec![0.25]);
        let d = decode(&wav_with(3, 1, 64, 8000, &(-0.75f64).to_le_bytes()), Some("wav")).unwrap();
        assert_eq!(d.samples, vec![-0.75]);
        // Stereo (0.5, -0.25) mixes to 0.125.
        let mut frame = 16384i16.to_le_bytes().to_vec();
        frame.extend_from_slice(&(-8192i16).to_le_bytes());
        let d = decode(&wav_with(1, 2, 16, 8000, &frame), Some("wav")).unwrap();
        assert_eq!(d.samples, vec![0.125]);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let full = wav_bytes(&tone(800, 8000, 440.0), 8000);
        // Cut short: the header still declares 800 samples.
        let err = decode(&full[..44 + 2 * 300], Some("wav")).unwrap_err().to_string();
        assert_eq!(err, "truncated: the header declares 800 samples, the file holds 300");
        assert_eq!(
            decode(&wav_with(1, 1, 16, 8000, &[]), Some("wav")).unwrap_err().to_string(),
            "the recording holds no samples"
        );
        assert_eq!(decode(&[], Some("wav")).unwrap_err().to_string(), "cannot decode the audio: the file is empty");
        let mut bad_header = full.clone();
        bad_header[8..12].copy_from_slice(b"AVI ");
        assert!(decode(&bad_header, Some("wav")).unwrap_err().to_string().starts_with("cannot decode the audio"));
        assert!(decode(b"definitely not audio at all", None).unwrap_err().to_string().starts_with("cannot decode"));
        // A 48-byte file whose header declares an hour at 48 kHz is refused before decoding.
        let mut huge = wav_with(1, 1, 16, 48_000, &[0, 0, 0, 0]);
        let declared = 48_000u32 * 3600 * 2;
        huge[4..8].copy_from_slice(&(36 + declared).to_le_bytes());
        huge[40..44].copy_from_slice(&declared.to_le_bytes());
        assert_eq!(
            decode(&huge, Some("wav")).unwrap_err().to_string(),
            "the recording declares 172800000 samples, more than dlp decodes (at most 28800000); cut it first"
        );
    }

    #[test]
    fn resampling_keeps_a_tone_and_the_length() {
        // One second of 440 Hz: 880 zero crossings and an RMS of 0.5 / sqrt(2) at any rate.
        let check = |y: &[f32], rate: usize| {
            assert_eq!(y.len(), rate);
            let inner = &y[rate / 20..rate - rate / 20];
            let crossings = inner.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
            assert!((crossings as f64 - 880.0 * 0.9).abs() <= 2.0, "{crossings} crossings");
            let rms = (inner.iter().map(|x| x * x).sum::<f32>() / inner.len() as f32).sqrt();
            assert!((rms - 0.5 / 2f32.sqrt()).abs() < 2e-3, "rms {rms}");
        };
        check(&resample(&tone(8000, 8000, 440.0), 8000, 16000).unwrap(), 16000);
        check(&resample(&tone(16000, 16000, 440.0), 16000, 8000).unwrap(), 8000);
        check(&resample(&tone(22050, 22050, 440.0), 22050, 16000).unwrap(), 16000);
    }

    #[test]
    fn lengths_are_padded_or_cropped_where_asked() {
        let x = [1., 2., 3., 4., 5.];
        assert_eq!(fit_length(&x, 3, Align::Start), vec![1., 2., 3.]);
        assert_eq!(fit_length(&x, 3, Align::Center), vec![2., 3., 4.]);
        assert_eq!(fit_length(&x[..2], 4, Align::Start), vec![1., 2., 0., 0.]);
        assert_eq!(fit_length(&x[..2], 4, Align::Center), vec![0., 1., 2., 0.]);
    }

    #[test]
    fn folders_and_lists_with_parts_and_bad_records() {
        let dir = tempfile::tempdir().unwrap();
        for (class, name, n) in [("a", "1.wav", 400), ("a", "2.wav", 800), ("b", "3.wav", 600)] {
            std::fs::create_dir_all(dir.path().join(class)).unwrap();
            std::fs::write(dir.path().join(class).join(name), wav_bytes(&tone(n, 8000, 300.0), 8000)).unwrap();
        }
        let fmt = AudioFormat { sample_rate: 8000, samples: None, align: Align::Start };
        let r = read_folder(dir.path(), "data.path", &fmt, OnBadRecord::Fail).unwrap();
        assert_eq!((r.audio.rows(), r.audio.samples), (3, 800));
        assert_eq!(r.audio.durations, vec![0.05, 0.1, 0.075]);
        assert_eq!(r.target.values.text(2).as_deref(), Some("b"));
        // Resampled on reading: 800 samples at 8 kHz are 1,600 at 16 kHz.
        let fmt16 = AudioFormat { sample_rate: 16000, samples: Some(1000), align: Align::Start };
        let r16 = read_folder(dir.path(), "data.path", &fmt16, OnBadRecord::Fail).unwrap();
        assert_eq!((r16.audio.samples, r16.audio.durations[1]), (1000, 0.1));

        std::fs::write(dir.path().join("b/4.wav"), b"RIFF....WAVEjunk").unwrap();
        let err = read_folder(dir.path(), "data.path", &fmt, OnBadRecord::Fail).unwrap_err().to_string();
        assert!(err.contains("4.wav: cannot decode the audio"), "{err}");
        let r = read_folder(dir.path(), "data.path", &fmt, OnBadRecord::Skip).unwrap();
        assert_eq!((r.report.records, r.report.skipped), (3, 1));

        let list = dir.path().join("list.csv");
        std::fs::write(&list, "path,label,split\na/1.wav,x,train\na/2.wav,y,test\nb/3.wav,x,dev\n").unwrap();
        let cols = ListColumns { file: "path", label: "label", split: Some("split") };
        let r = read_list(&list, "data.path", &cols, &fmt, OnBadRecord::Fail).unwrap();
        assert_eq!(r.parts, Some(vec![Part::Train, Part::Test, Part::Validation]));
        assert_eq!(r.inputs.len(), 2);
        std::fs::write(&list, "path,label,split\na/1.wav,x,train\nb/4.wav,y,test\nb/3.wav,x,later\n").unwrap();
        let err = read_list(&list, "data.path", &cols, &fmt, OnBadRecord::Fail).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}:4: column `split`: \"later\" is not a part (train, validation or test)", list.display())
        );
        let r = read_list(&list, "data.path", &cols, &fmt, OnBadRecord::Skip).unwrap();
        assert_eq!((r.report.records, r.report.skipped), (1, 2));
        std::fs::write(&list, "path,label,split\nb/4.wav,y,test\n").unwrap();
        let err = read_list(&list, "data.path", &cols, &fmt, OnBadRecord::Fail).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:2: ", list.display())) && err.contains("4.wav: cannot decode"), "{err}");
        let bad_cols = ListColumns { file: "file", ..cols };
        let err = read_list(&list, "data.path", &bad_cols, &fmt, OnBadRecord::Fail).unwrap_err().to_string();
        assert!(err.ends_with("no column `file` (data.file_column); the header has `path`, `label`, `split`"), "{err}");
    }
}
