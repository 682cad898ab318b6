//! Compressed recordings decode through `data_ingest::audio`: FLAC (16- and 24-bit, stereo mixed
//! down: (x - x / 2) / 2), Ogg Vorbis and MP3 fixtures written by libsndfile (`tests/fixtures/make_fixtures.py`).

#![allow(clippy::unwrap_used, reason = "tests: a failed unwrap is a failed test")]

use data_ingest::audio::decode;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap()
}

/// The strongest frequency (200-800 Hz in 5 Hz steps, by correlation) and the RMS over the
/// middle of the clip.
fn tone_of(x: &[f32], rate: f64) -> (f64, f64) {
    let inner = &x[x.len() / 5..x.len() * 4 / 5];
    let power = |f: f64| {
        let (mut c, mut s) = (0.0, 0.0);
        for (i, v) in inner.iter().enumerate() {
            let w = std::f64::consts::TAU * f * i as f64 / rate;
            c += f64::from(*v) * w.cos();
            s += f64::from(*v) * w.sin();
        }
        c * c + s * s
    };
    let peak = (40..=160).map(|k| f64::from(k) * 5.0).max_by(|a, b| power(*a).total_cmp(&power(*b))).unwrap();
    let rms = (inner.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / inner.len() as f64).sqrt();
    (peak, rms)
}

#[test]
fn flac_ogg_and_mp3_decode_to_the_tone_they_hold() {
    for (name, ext, amplitude, exact_length) in [
        ("tone.flac", "flac", 0.5, true),
        ("tone_stereo.flac", "flac", 0.125, true),
        ("tone.ogg", "ogg", 0.5, false),
        ("tone.mp3", "mp3", 0.5, false),
    ] {
        // With the extension as a hint, and without (as a server upload is read).
        for hint in [Some(ext), None] {
            let d = decode(&fixture(name), hint).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(d.sample_rate, 8000, "{name}");
            if exact_length {
                assert_eq!(d.samples.len(), 4000, "{name}");
            } else {
                // MP3 frames carry encoder delay and padding; Vorbis packets end on a block.
                assert!((4000..=5200).contains(&d.samples.len()), "{name}: {} samples", d.samples.len());
            }
            let (hz, rms) = tone_of(&d.samples, 8000.0);
            // The RMS of a sine is amplitude / sqrt(2).
            assert_eq!(hz, 440.0, "{name}: strongest frequency");
            let want = amplitude / 2f64.sqrt();
            assert!((rms - want).abs() < 0.02 * want + 0.005, "{name}: rms {rms}, want {want}");
        }
    }
    // A FLAC stream cut short is an error, not a panic.
    let cut = &fixture("tone.flac")[..600];
    match decode(cut, Some("flac")) {
        Ok(d) => assert!(d.samples.len() < 4000),
        Err(e) => assert!(e.to_string().starts_with("cannot decode") || e.to_string().contains("no samples"), "{e}"),
    }
}
