//! Audio features: the short-time Fourier transform (`realfft`), mel filter banks, log-mel
//! spectrograms and MFCCs, computed as librosa computes them (`librosa.feature.melspectrogram`
//! with `center=True, pad_mode="constant"`, `power_to_db(ref=1.0, amin=1e-10, top_db)`,
//! `librosa.feature.mfcc` with an orthonormal DCT-II), so that features match the Python
//! reference; tests hold them to librosa 0.11's values.
//!
//! A clip of `n` samples gives `1 + n / hop_length` frames; features are laid out as a one-channel
//! image `bands × frames` (mel bands or cepstral coefficients by time), so the image models
//! (CNN, ResNet) and the image augmentations apply to them unchanged.

use std::sync::Arc;

use pipeline_core::config::Issue;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

/// Which features.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioFeatures {
    /// Log-mel spectrogram (dB).
    #[default]
    LogMel,
    /// Mel-frequency cepstral coefficients of the log-mel spectrogram.
    Mfcc,
}

/// How the mel filters are normalised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MelNorm {
    /// Each filter divided by its width in Hz (`norm="slaney"`): constant energy per band.
    #[default]
    Slaney,
    /// Triangles of height 1.
    None,
}

fn d_n_fft() -> usize {
    512
}
fn d_hop() -> usize {
    160
}
fn d_mels() -> usize {
    64
}
fn d_mfcc() -> usize {
    20
}
fn d_top_db() -> Option<f64> {
    Some(80.0)
}

/// `preprocess.audio`: the features computed from each clip. Defaults suit 16 kHz speech
/// (32 ms windows, 10 ms hop, 64 mel bands).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    /// `log_mel` or `mfcc`.
    #[serde(default)]
    pub features: AudioFeatures,
    /// FFT size in samples.
    #[serde(default = "d_n_fft")]
    pub n_fft: usize,
    /// Window length (a periodic Hann window, centred in the FFT frame); `n_fft` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub win_length: Option<usize>,
    /// Samples between frames.
    #[serde(default = "d_hop")]
    pub hop_length: usize,
    /// Mel bands.
    #[serde(default = "d_mels")]
    pub n_mels: usize,
    /// Lowest filter frequency in Hz.
    #[serde(default)]
    pub fmin: f64,
    /// Highest filter frequency in Hz; half the sample rate by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmax: Option<f64>,
    /// The HTK mel scale instead of Slaney's (librosa's `htk=True`).
    #[serde(default)]
    pub htk: bool,
    /// Filter normalisation.
    #[serde(default)]
    pub mel_norm: MelNorm,
    /// Floor of each clip's spectrogram, in dB below its peak; `null` for none.
    #[serde(default = "d_top_db")]
    pub top_db: Option<f64>,
    /// Coefficients kept (`mfcc` only).
    #[serde(default = "d_mfcc")]
    pub n_mfcc: usize,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            features: AudioFeatures::LogMel,
            n_fft: d_n_fft(),
            win_length: None,
            hop_length: d_hop(),
            n_mels: d_mels(),
            fmin: 0.0,
            fmax: None,
            htk: false,
            mel_norm: MelNorm::Slaney,
            top_db: d_top_db(),
            n_mfcc: d_mfcc(),
        }
    }
}

impl AudioConfig {
    /// Checks the values on their own (the sample rate is checked when the data is known).
    pub fn validate(&self, key: &str) -> Vec<Issue> {
        let mut issues = Vec::new();
        if !(16..=1 << 16).contains(&self.n_fft) {
            issues.push(Issue::new(format!("{key}.n_fft"), format!("must be 16-65536 samples, got {}", self.n_fft)));
        }
        if let Some(w) = self.win_length
            && (w == 0 || w > self.n_fft)
        {
            issues.push(Issue::new(
                format!("{key}.win_length"),
                format!("must be 1 to n_fft ({}) samples, got {w}", self.n_fft),
            ));
        }
        if self.hop_length == 0 {
            issues.push(Issue::new(format!("{key}.hop_length"), "must be at least 1 sample"));
        }
        if !(1..=512).contains(&self.n_mels) {
            issues.push(Issue::new(format!("{key}.n_mels"), format!("must be 1-512, got {}", self.n_mels)));
        }
        if self.features == AudioFeatures::Mfcc && !(1..=self.n_mels).contains(&self.n_mfcc) {
            issues.push(Issue::new(
                format!("{key}.n_mfcc"),
                format!("must be 1 to n_mels ({}), got {}", self.n_mels, self.n_mfcc),
            ));
        }
        if !(self.fmin.is_finite() && self.fmin >= 0.0) {
            issues.push(Issue::new(format!("{key}.fmin"), format!("must be a frequency >= 0 Hz, got {}", self.fmin)));
        }
        if let Some(f) = self.fmax
            && !(f.is_finite() && f > self.fmin)
        {
            issues.push(Issue::new(format!("{key}.fmax"), format!("must be above fmin ({} Hz), got {f}", self.fmin)));
        }
        if let Some(t) = self.top_db
            && !(t.is_finite() && t > 0.0)
        {
            issues.push(Issue::new(format!("{key}.top_db"), format!("must be positive dB or null, got {t}")));
        }
        issues
    }

    /// Feature rows per frame.
    pub fn bands(&self) -> usize {
        match self.features {
            AudioFeatures::LogMel => self.n_mels,
            AudioFeatures::Mfcc => self.n_mfcc,
        }
    }

    /// Frames of a clip of `samples` samples.
    pub fn frames(&self, samples: usize) -> usize {
        1 + samples / self.hop_length
    }
}

/// Hz → mel, Slaney's scale (linear below 1 kHz, logarithmic above) or HTK's.
pub fn hz_to_mel(hz: f64, htk: bool) -> f64 {
    if htk {
        return 2595.0 * (1.0 + hz / 700.0).log10();
    }
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz { min_log_mel + (hz / min_log_hz).ln() / logstep } else { hz / f_sp }
}

/// Mel → Hz, the inverse of [`hz_to_mel`].
pub fn mel_to_hz(mel: f64, htk: bool) -> f64 {
    if htk {
        return 700.0 * (10f64.powf(mel / 2595.0) - 1.0);
    }
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel { min_log_hz * (logstep * (mel - min_log_mel)).exp() } else { f_sp * mel }
}

/// The mel filter bank, `n_mels × (n_fft / 2 + 1)` row-major, as `librosa.filters.mel` builds it.
pub fn mel_filters(sr: f64, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64, htk: bool, norm: MelNorm) -> Vec<f64> {
    let bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins).map(|i| i as f64 * sr / n_fft as f64).collect();
    let (lo, hi) = (hz_to_mel(fmin, htk), hz_to_mel(fmax, htk));
    let mel_f: Vec<f64> =
        (0..n_mels + 2).map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64, htk)).collect();
    let mut w = vec![0f64; n_mels * bins];
    for m in 0..n_mels {
        let (d0, d1) = (mel_f[m + 1] - mel_f[m], mel_f[m + 2] - mel_f[m + 1]);
        let enorm = match norm {
            MelNorm::Slaney => 2.0 / (mel_f[m + 2] - mel_f[m]),
            MelNorm::None => 1.0,
        };
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - mel_f[m]) / d0;
            let upper = (mel_f[m + 2] - f) / d1;
            w[m * bins + k] = lower.min(upper).max(0.0) * enorm;
        }
    }
    w
}

/// A periodic Hann window of `win` samples, zero-padded (centred) to `n_fft`.
fn window(n_fft: usize, win: usize) -> Vec<f64> {
    let mut w = vec![0f64; n_fft];
    let left = (n_fft - win) / 2;
    for n in 0..win {
        w[left + n] = 0.5 - 0.5 * (std::f64::consts::TAU * n as f64 / win as f64).cos();
    }
    w
}

/// Why features cannot be computed at a sample rate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudioError {
    /// The filters reach past the Nyquist frequency.
    #[error("preprocess.audio.fmax: {fmax} Hz is above half the sample rate ({nyquist} Hz)")]
    FmaxAboveNyquist {
        /// The configured `fmax`.
        fmax: f64,
        /// Half the sample rate.
        nyquist: f64,
    },
}

/// A feature extractor for one sample rate: the plan, window and filters made once.
#[derive(Clone)]
pub struct Extractor {
    config: AudioConfig,
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    filters: Vec<f64>,
    dct: Vec<f64>,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Extractor {
    /// For clips at `sample_rate`. `config` must have passed [`AudioConfig::validate`]; `fmax`
    /// above the Nyquist frequency is an error.
    pub fn new(config: &AudioConfig, sample_rate: u32) -> Result<Self, AudioError> {
        let sr = f64::from(sample_rate);
        let fmax = config.fmax.unwrap_or(sr / 2.0);
        if fmax > sr / 2.0 + 1e-9 {
            return Err(AudioError::FmaxAboveNyquist { fmax, nyquist: sr / 2.0 });
        }
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(config.n_fft);
        let n = config.n_mels;
        // Orthonormal DCT-II rows: c_k = s_k Σ x_n cos(π k (2n + 1) / 2N).
        let dct = (0..config.n_mfcc.min(n))
            .flat_map(|k| {
                let s = if k == 0 { (1.0 / n as f64).sqrt() } else { (2.0 / n as f64).sqrt() };
                (0..n).map(move |i| s * (std::f64::consts::PI * k as f64 * (2 * i + 1) as f64 / (2 * n) as f64).cos())
            })
            .collect();
        Ok(Self {
            window: window(config.n_fft, config.win_length.unwrap_or(config.n_fft)),
            filters: mel_filters(sr, config.n_fft, n, config.fmin, fmax, config.htk, config.mel_norm),
            fft,
            dct,
            config: config.clone(),
        })
    }

    /// The mel power spectrogram of `clip`, `n_mels × frames` row-major.
    pub fn mel_power(&self, clip: &[f32]) -> Vec<f64> {
        let n_fft = self.config.n_fft;
        let hop = self.config.hop_length;
        let bins = n_fft / 2 + 1;
        let frames = self.config.frames(clip.len());
        let pad = n_fft / 2;
        let n_mels = self.config.n_mels;
        let mut out = vec![0f64; n_mels * frames];
        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f64; bins];
        for t in 0..frames {
            // Frame t covers padded samples [t·hop, t·hop + n_fft); the signal starts at `pad`.
            for (j, x) in frame.iter_mut().enumerate() {
                let i = (t * hop + j) as isize - pad as isize;
                let s = if i >= 0 && (i as usize) < clip.len() { f64::from(clip[i as usize]) } else { 0.0 };
                *x = s * self.window[j];
            }
            // The buffers are the plan's own sizes, so the transform cannot fail.
            if self.fft.process_with_scratch(&mut frame, &mut spectrum, &mut scratch).is_err() {
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for m in 0..n_mels {
                let w = &self.filters[m * bins..(m + 1) * bins];
                out[m * frames + t] = w.iter().zip(&power).map(|(a, b)| a * b).sum();
            }
        }
        out
    }

    /// The features of one clip, `bands × frames` row-major.
    pub fn features(&self, clip: &[f32]) -> Vec<f64> {
        let mut db: Vec<f64> = self.mel_power(clip).into_iter().map(|p| 10.0 * p.max(1e-10).log10()).collect();
        if let Some(top) = self.config.top_db {
            let peak = db.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            db.iter_mut().for_each(|v| *v = v.max(peak - top));
        }
        match self.config.features {
            AudioFeatures::LogMel => db,
            AudioFeatures::Mfcc => {
                let (n, frames) = (self.config.n_mels, self.config.frames(clip.len()));
                let k = self.config.n_mfcc;
                let mut out = vec![0f64; k * frames];
                for c in 0..k {
                    let row = &self.dct[c * n..(c + 1) * n];
                    for t in 0..frames {
                        out[c * frames + t] = (0..n).map(|m| row[m] * db[m * frames + t]).sum();
                    }
                }
                out
            }
        }
    }
}

/// A clip's log-mel spectrogram as a grey picture for plots: 48 mel bands (low frequencies at
/// the bottom) by at most 128 frames, the top 80 dB mapped to 0–255. Returns
/// `(pixels, height, width)`.
pub fn spectrogram_picture(clip: &[f32], sample_rate: u32) -> (Vec<f32>, usize, usize) {
    let n_fft = if sample_rate <= 8_000 { 256 } else { 512 };
    let hop = (clip.len() / 127).max(n_fft / 8).max(1);
    let config = AudioConfig { n_fft, hop_length: hop, n_mels: 48, top_db: Some(80.0), ..Default::default() };
    let Ok(e) = Extractor::new(&config, sample_rate) else { return (vec![0.0], 1, 1) };
    let db = e.features(clip);
    let (h, w) = (48, config.frames(clip.len()));
    let peak = db.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut out = vec![0f32; h * w];
    for m in 0..h {
        for t in 0..w {
            let v = ((db[m * w + t] - (peak - 80.0)) / 80.0).clamp(0.0, 1.0);
            out[(h - 1 - m) * w + t] = (v * 255.0) as f32;
        }
    }
    (out, h, w)
}

/// The spectral centroid of a clip in Hz: the magnitude-weighted mean frequency of each
/// 512-sample Hann frame (hop 256; librosa's `spectral_centroid` per frame), averaged over the
/// frames that are not silent; 0 for a silent clip. A drift feature: it moves when the
/// microphone, the room or the speaker population changes.
pub fn spectral_centroid(clip: &[f32], sample_rate: u32) -> f64 {
    let n_fft = 512usize;
    let hop = n_fft / 2;
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n_fft);
    let win = window(n_fft, n_fft);
    let (mut frame, mut spectrum, mut scratch) = (fft.make_input_vec(), fft.make_output_vec(), fft.make_scratch_vec());
    let (mut total, mut counted) = (0.0, 0usize);
    let mut start = 0;
    loop {
        for (j, x) in frame.iter_mut().enumerate() {
            *x = clip.get(start + j).map_or(0.0, |&s| f64::from(s)) * win[j];
        }
        if fft.process_with_scratch(&mut frame, &mut spectrum, &mut scratch).is_ok() {
            let (mut num, mut den) = (0.0, 0.0);
            for (k, c) in spectrum.iter().enumerate() {
                let m = c.norm();
                num += m * k as f64 * f64::from(sample_rate) / n_fft as f64;
                den += m;
            }
            if den > 1e-9 {
                total += num / den;
                counted += 1;
            }
        }
        start += hop;
        if start + hop >= clip.len().max(hop + 1) {
            break;
        }
    }
    if counted == 0 { 0.0 } else { total / counted as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `data/fsdd/recordings/0_jackson_0.wav` as librosa reads it (int16 / 32768).
    fn jackson() -> Vec<f32> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fsdd/recordings/0_jackson_0.wav");
        let bytes = std::fs::read(path).unwrap();
        bytes[44..].chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0).collect()
    }

    fn two_tones() -> Vec<f32> {
        (0..2000)
            .map(|n| {
                let t = n as f64 / 8000.0;
                (0.5 * (std::f64::consts::TAU * 440.0 * t).sin() + 0.25 * (std::f64::consts::TAU * 1250.0 * t).sin())
                    as f32
            })
            .collect()
    }

    fn cfg(features: AudioFeatures, top_db: Option<f64>) -> AudioConfig {
        AudioConfig { features, n_fft: 256, hop_length: 96, n_mels: 40, top_db, n_mfcc: 13, ..Default::default() }
    }

    fn at(v: &[f64], frames: usize, row: usize, t: usize) -> f64 {
        v[row * frames + t]
    }

    fn close(got: f64, want: f64, tol: f64, what: &str) {
        assert!((got - want).abs() <= tol, "{what}: {got} vs librosa {want}");
    }

    // Reference values: librosa 0.11.0 (NumPy 2.4.6), printed with repr. The recording's 16-bit
    // samples are exact in f32; the two tones were rounded to f32 before librosa saw them, as
    // clips are f32 here.
    #[test]
    fn mel_filters_match_librosa() {
        let f = mel_filters(8000.0, 256, 40, 0.0, 4000.0, false, MelNorm::Slaney);
        let row = |m: usize| &f[m * 129..(m + 1) * 129];
        for (got, want) in
            row(0)[..4].iter().zip([0.0, 0.009558937696841796, 0.015861318782222602, 0.006302381085380807])
        {
            close(*got, want, 1e-12, "F[0]");
        }
        for (got, want) in
            row(10)[19..22].iter().zip([0.006723845360463155, 0.016282783057304958, 0.009137473421759449])
        {
            close(*got, want, 1e-12, "F[10]");
        }
        close(row(39)[119], 0.0034079380898994604, 1e-12, "F[39,119]");
        for (m, want) in [
            (0, 0.031722637564445204),
            (5, 0.033140183732634526),
            (20, 0.031462120996117934),
            (39, 0.03191958927148286),
        ] {
            close(row(m).iter().sum(), want, 1e-12, "row sum");
        }
    }

    #[test]
    fn log_mel_matches_librosa_on_a_recording() {
        let clip = jackson();
        assert_eq!(clip.len(), 5148);
        let e = Extractor::new(&cfg(AudioFeatures::LogMel, Some(80.0)), 8000).unwrap();
        let frames = 54;
        assert_eq!(e.config.frames(clip.len()), frames);
        let p = e.mel_power(&clip);
        // librosa's filters are float32: relative differences up to ~1e-7 in the power.
        for ((r, t), want) in
            [((0, 0), 0.0009282864828795279), ((5, 3), 0.39642225857090146), ((39, 53), 2.0374172572323485e-07)]
        {
            let got = at(&p, frames, r, t);
            assert!(((got - want) / want).abs() < 1e-6, "S[{r},{t}] {got} vs {want}");
        }
        let l = e.features(&clip);
        assert_eq!(l.len(), 40 * frames);
        for ((r, t), want) in [
            ((0, 0), -30.32317973422129),
            ((5, 3), -4.01841968457387),
            ((10, 10), -32.42239095703266),
            ((20, 7), -50.48569467117094),
            ((39, 15), -35.79535958034046),
            ((39, 53), -66.90920019622136),
        ] {
            close(at(&l, frames, r, t), want, 1e-4, &format!("L[{r},{t}]"));
        }
        close(l.iter().sum::<f64>() / l.len() as f64, -32.240773081108266, 1e-4, "mean");
        close(l.iter().copied().fold(f64::MIN, f64::max), 10.842162667982183, 1e-4, "max");
        close(l.iter().copied().fold(f64::MAX, f64::min), -69.15783733201782, 1e-4, "min (peak - top_db)");
        let unlimited = Extractor::new(&cfg(AudioFeatures::LogMel, None), 8000).unwrap().features(&clip);
        close(unlimited.iter().copied().fold(f64::MAX, f64::min), -72.32387076878089, 1e-4, "min without top_db");
    }

    #[test]
    fn mfcc_matches_librosa() {
        let clip = jackson();
        let m = Extractor::new(&cfg(AudioFeatures::Mfcc, Some(80.0)), 8000).unwrap().features(&clip);
        let frames = 54;
        assert_eq!(m.len(), 13 * frames);
        for ((r, t), want) in [
            ((0, 0), -310.3007649097915),
            ((0, 10), -208.88604780181996),
            ((1, 3), 98.05666611055403),
            ((5, 0), 2.0784334591178566),
            ((5, 10), -6.0711119069764),
            ((12, 3), 11.607851714668115),
            ((12, 53), -5.224578011780122),
        ] {
            close(at(&m, frames, r, t), want, 1e-4, &format!("MFCC[{r},{t}]"));
        }
        close(m.iter().sum::<f64>() / m.len() as f64, -11.001449879692645, 1e-4, "mean");
        let tones = Extractor::new(&cfg(AudioFeatures::Mfcc, Some(80.0)), 8000).unwrap().features(&two_tones());
        close(at(&tones, 21, 0, 0), -117.52088952322181, 1e-4, "tones MFCC[0,0]");
        close(at(&tones, 21, 12, 20), 18.62886635031726, 1e-4, "tones MFCC[12,20]");
    }

    #[test]
    fn htk_filters_short_windows_and_a_clamped_floor_match_librosa() {
        let c = AudioConfig {
            n_fft: 256,
            win_length: Some(200),
            hop_length: 80,
            n_mels: 32,
            fmin: 20.0,
            fmax: Some(3800.0),
            htk: true,
            mel_norm: MelNorm::None,
            top_db: None,
            ..Default::default()
        };
        let e = Extractor::new(&c, 8000).unwrap();
        let l = e.features(&jackson());
        let frames = 65;
        assert_eq!(l.len(), 32 * frames);
        for ((r, t), want) in [
            ((0, 0), -13.962105144694721),
            ((5, 3), 9.861146303967637),
            ((10, 10), -18.190959235052933),
            ((20, 7), -16.767365309638333),
            ((31, 64), -39.05248757934891),
        ] {
            close(at(&l, frames, r, t), want, 1e-4, &format!("C[{r},{t}]"));
        }
        let t = Extractor::new(&c, 8000).unwrap().features(&two_tones());
        close(at(&t, 26, 31, 25), -23.40844319728219, 1e-4, "tones C[31,25]");
        // Two tones, default filters, no floor: frame 5 of every band, including the
        // bands below amin (exactly -100 dB).
        let column: Vec<f64> = {
            let e = Extractor::new(&cfg(AudioFeatures::LogMel, None), 8000).unwrap();
            let v = e.features(&two_tones());
            (0..40).map(|r| at(&v, 21, r, 5)).collect()
        };
        let want = [
            -71.98943177199558,
            -67.62738343566794,
            -62.16046198946362,
            -55.39730236032724,
            -46.5766908608628,
            -29.174123238531262,
            9.683600918318891,
            12.161087031248874,
            0.482362262951052,
            -39.87545460071472,
            -51.900486638843816,
            -59.69928265453376,
            -65.63612494273266,
            -70.11221329671199,
            -73.97673681097922,
            -77.35000152810204,
            -80.32561165639733,
            -83.12458850907737,
            -85.75673283928532,
            -8.26616480718021,
            5.563003233030401,
            1.650344130234319,
            -95.2246597003247,
            -97.27798417493736,
            -99.53926698457862,
        ];
        for (r, w) in want.iter().enumerate() {
            close(column[r], *w, 1e-4, &format!("tones L[{r},5]"));
        }
        assert!(column[25..].iter().all(|&v| v == -100.0));
    }

    #[test]
    fn a_tone_has_its_frequency_as_centroid() {
        let tone: Vec<f32> =
            (0..8000).map(|n| (std::f64::consts::TAU * 1000.0 * n as f64 / 8000.0).sin() as f32).collect();
        let c = spectral_centroid(&tone, 8000);
        assert!((c - 1000.0).abs() < 15.0, "{c}");
        assert_eq!(spectral_centroid(&[0.0; 1000], 8000), 0.0);
    }

    #[test]
    fn configs_are_checked() {
        let bad = AudioConfig { n_fft: 8, win_length: Some(9), hop_length: 0, fmax: Some(-1.0), ..Default::default() };
        let msgs: Vec<String> = bad.validate("preprocess.audio").iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "preprocess.audio.n_fft: must be 16-65536 samples, got 8",
                "preprocess.audio.win_length: must be 1 to n_fft (8) samples, got 9",
                "preprocess.audio.hop_length: must be at least 1 sample",
                "preprocess.audio.fmax: must be above fmin (0 Hz), got -1",
            ]
        );
        let err = Extractor::new(&AudioConfig { fmax: Some(5000.0), ..Default::default() }, 8000).unwrap_err();
        assert_eq!(err.to_string(), "preprocess.audio.fmax: 5000 Hz is above half the sample rate (4000 Hz)");
    }
}
