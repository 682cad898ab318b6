//! Image folders: `<folder>/<class>/<image>`, PNG / JPEG / BMP decoded with the `image` crate,
//! converted to grey or RGB, resized (bilinear) to one size, decoded in parallel.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use pipeline_core::FeatureKind;
use pipeline_core::raw::{Column, ImageSet, Values};
use pipeline_core::run::InputFile;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::table::{BadRecord, OnBadRecord, ReadReport};
use crate::text::{class_files, folder_identity};
use crate::{Error, Result};

/// The extensions read (case-insensitive).
pub const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// Images and their labels.
#[derive(Debug, Clone)]
pub struct ImagesRead {
    /// The images.
    pub images: ImageSet,
    /// The class of each (the folder name).
    pub target: Column,
    /// The folder's identity.
    pub input: InputFile,
    /// Images that could not be decoded, when skipped.
    pub report: ReadReport,
}

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The most pixels of one image (33.5 million, e.g. 8192 × 4096): the header is read first,
/// so a few hundred bytes declaring a huge image cannot make a reader (or the server) spend
/// seconds and hundreds of megabytes decoding it. Found by fuzzing: a 391-byte JPEG declaring
/// 4096 × 12048 pixels.
pub const MAX_PIXELS: u64 = 1 << 25;

/// Why one image file could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not an image in a format the `image` crate reads, or a damaged one.
    #[error("cannot decode the image: {0}")]
    Format(String),
    /// Its header declares more than [`MAX_PIXELS`] pixels (checked before decoding).
    #[error(
        "the image is {width}x{height} pixels, more than dlp decodes (at most {MAX_PIXELS} pixels); resize it first"
    )]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
}

/// Decodes one image file to `channels × height × width` values 0–255, resizing when `size`
/// is given; without it, the image must already be `expect` (height, width) when given.
pub fn decode(
    bytes: &[u8],
    channels: usize,
    size: Option<(usize, usize)>,
) -> std::result::Result<(Vec<f32>, usize, usize), DecodeError> {
    let format = |e: &dyn std::fmt::Display| DecodeError::Format(e.to_string());
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format(&e))?
        .into_dimensions()
        .map_err(|e| format(&e))?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(DecodeError::TooLarge { width: w, height: h });
    }
    let img = image::load_from_memory(bytes).map_err(|e| format(&e))?;
    let img = match size {
        Some((h, w)) if (img.height() as usize, img.width() as usize) != (h, w) => {
            img.resize_exact(w as u32, h as u32, FilterType::Triangle)
        }
        _ => img,
    };
    let (w, h) = (img.width() as usize, img.height() as usize);
    let values = match channels {
        1 => img.to_luma8().into_raw().into_iter().map(f32::from).collect(),
        _ => {
            let rgb = img.to_rgb8().into_raw();
            // Interleaved RGB → channel-first.
            let mut out = vec![0f32; 3 * h * w];
            for (i, px) in rgb.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * h * w + i] = f32::from(px[c]);
                }
            }
            out
        }
    };
    Ok((values, h, w))
}

/// One file after parallel decoding.
struct Decoded {
    class: String,
    path: PathBuf,
    digest: [u8; 32],
    bytes: u64,
    result: std::result::Result<(Vec<f32>, usize, usize), String>,
}

/// Reads `root/<class>/<image>`: `channels` 1 or 3; `size` (height, width) to resize to, or
/// `None` to take the first image's size and require it of all.
pub fn read_folder(
    root: &Path,
    role: &str,
    channels: usize,
    size: Option<(usize, usize)>,
    on_bad: OnBadRecord,
) -> Result<ImagesRead> {
    let classes = class_files(root, &is_image)?;
    let files: Vec<(String, PathBuf)> =
        classes.into_iter().flat_map(|(c, fs)| fs.into_iter().map(move |f| (c.clone(), f))).collect();
    let decoded: Vec<Decoded> = files
        .into_par_iter()
        .map(|(class, path)| match std::fs::read(&path) {
            Ok(bytes) => Decoded {
                digest: Sha256::digest(&bytes).into(),
                bytes: bytes.len() as u64,
                result: decode(&bytes, channels, size).map_err(|e| e.to_string()),
                class,
                path,
            },
            Err(e) => Decoded { class, path, digest: [0; 32], bytes: 0, result: Err(format!("cannot read: {e}")) },
        })
        .collect();
    let mut report = ReadReport::default();
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut shape: Option<(usize, usize)> = size;
    let mut ids = Vec::new();
    for Decoded { class, path, digest, bytes, result } in decoded {
        ids.push((path.clone(), digest, bytes));
        let checked = result.and_then(|(v, h, w)| match shape {
            Some((eh, ew)) if (eh, ew) != (h, w) => {
                Err(format!("image is {h}x{w}, expected {eh}x{ew} (set data.size to resize all images)"))
            }
            _ => {
                shape = Some((h, w));
                Ok(v)
            }
        });
        match checked {
            Ok(v) => {
                pixels.extend(v);
                labels.push(Some(class));
            }
            Err(reason) => match on_bad {
                OnBadRecord::Fail => return Err(Error::format(&path, reason)),
                OnBadRecord::Skip => report.bad(BadRecord { file: path.display().to_string(), line: 0, reason }),
            },
        }
    }
    let Some((height, width)) = shape.filter(|_| !labels.is_empty()) else {
        return Err(Error::format(root, "no image could be read"));
    };
    report.records = labels.len();
    Ok(ImagesRead {
        images: ImageSet { channels, height, width, pixels },
        target: Column { name: "label".into(), kind: FeatureKind::Categorical, values: Values::from_strings(labels) },
        input: folder_identity(root, role, &ids),
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(dir: &Path, class: &str, name: &str, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
        img.save(dir.join(class).join(name)).unwrap();
    }

    #[test]
    fn reads_grey_and_rgb_channel_first() {
        let dir = tempfile::tempdir().unwrap();
        png(dir.path(), "a", "1.png", 3, 2, |x, y| [10 * x as u8, 100 + y as u8, 7]);
        png(dir.path(), "b", "2.png", 3, 2, |_, _| [255, 255, 255]);
        let r = read_folder(dir.path(), "data", 3, None, OnBadRecord::Fail).unwrap();
        assert_eq!((r.images.channels, r.images.height, r.images.width, r.images.rows()), (3, 2, 3, 2));
        // Image 0: red plane x*10, green plane 100+y, blue plane 7.
        assert_eq!(&r.images.pixels[..6], &[0., 10., 20., 0., 10., 20.]);
        assert_eq!(&r.images.pixels[6..12], &[100., 100., 100., 101., 101., 101.]);
        assert_eq!(r.target.values, Values::Strings(vec![Some("a".into()), Some("b".into())]));
        let grey = read_folder(dir.path(), "data", 1, None, OnBadRecord::Fail).unwrap();
        assert_eq!(grey.images.width_values(), 6);
        assert_eq!(grey.images.pixels[6], 255.0);
    }

    #[test]
    fn a_small_file_declaring_a_huge_image_is_refused_before_decoding() {
        // A 54-byte BMP header declaring 8192 x 8192 pixels of 24 bits, with no pixel data.
        let mut bmp = b"BM".to_vec();
        for v in [54u32, 0, 54, 40, 8192, 8192] {
            bmp.extend_from_slice(&v.to_le_bytes());
        }
        bmp.extend_from_slice(&1u16.to_le_bytes());
        bmp.extend_from_slice(&24u16.to_le_bytes());
        bmp.extend_from_slice(&[0; 24]);
        assert_eq!(bmp.len(), 54);
        assert_eq!(
            decode(&bmp, 1, Some((8, 8))).unwrap_err().to_string(),
            "the image is 8192x8192 pixels, more than dlp decodes (at most 33554432 pixels); resize it first"
        );
        assert!(decode(b"not an image", 1, None).unwrap_err().to_string().starts_with("cannot decode the image"));
    }

    #[test]
    fn resizes_and_rejects_mismatched_or_corrupt_images() {
        let dir = tempfile::tempdir().unwrap();
        png(dir.path(), "a", "big.png", 8, 8, |_, _| [200, 200, 200]);
        png(dir.path(), "a", "small.png", 4, 4, |_, _| [50, 50, 50]);
        let r = read_folder(dir.path(), "data", 1, Some((4, 4)), OnBadRecord::Fail).unwrap();
        assert_eq!((r.images.height, r.images.width, r.images.rows()), (4, 4, 2));
        assert!((r.images.pixels[0] - 200.0).abs() < 1.0);
        let err = read_folder(dir.path(), "data", 1, None, OnBadRecord::Fail).unwrap_err();
        assert!(
            err.to_string().ends_with("small.png: image is 4x4, expected 8x8 (set data.size to resize all images)"),
            "{err}"
        );
        std::fs::write(dir.path().join("a/zz.png"), b"not a png").unwrap();
        let err = read_folder(dir.path(), "data", 1, Some((4, 4)), OnBadRecord::Fail).unwrap_err().to_string();
        assert!(err.contains("zz.png: cannot decode the image"), "{err}");
        let r = read_folder(dir.path(), "data", 1, Some((4, 4)), OnBadRecord::Skip).unwrap();
        assert_eq!((r.report.records, r.report.skipped), (2, 1));
    }
}
