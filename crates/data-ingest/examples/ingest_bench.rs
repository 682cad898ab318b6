//! Ingest throughput, for `cargo xtask bench ingest`: reads a CSV file (kinds inferred, as a
//! pipeline would) or decodes and resizes an image folder, `repeats` times, and prints one line
//! per repeat: `seconds records`.
//!
//! Usage: `ingest_bench csv <file> <repeats>` | `ingest_bench images <folder> <size> <repeats>`
//! | `ingest_bench parquet <file> <repeats>` (every column, kinds from the file's types)
//! | `ingest_bench make-images <folder> <count>` (writes `count` 96x96 RGB images, PNG and JPEG,
//! in 4 class folders, for the image benchmark) | `ingest_bench make-parquet <csv> <parquet>`
//! (the CSV's numeric columns as float64 Parquet, Snappy, row groups of 131,072 rows).

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::path::Path;
use std::time::Instant;

use data_ingest::table::{Selection, TableFormat, default_missing, read};
use data_ingest::{Delimiter, OnBadRecord};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: ingest_bench csv <file> <repeats> | images <folder> <size> <repeats>";
    match args.get(1).map(String::as_str) {
        Some("csv") => {
            let (file, repeats) = (args.get(2).ok_or(usage)?, args.get(3).ok_or(usage)?.parse::<usize>()?);
            let fmt = csv_format();
            for _ in 0..repeats {
                let t = Instant::now();
                let r = read(Path::new(file), "bench", &fmt, &Selection::default())?;
                println!("{:.6} {}", t.elapsed().as_secs_f64(), r.table.rows());
            }
        }
        Some("parquet") => {
            let (file, repeats) = (args.get(2).ok_or(usage)?, args.get(3).ok_or(usage)?.parse::<usize>()?);
            let config = data_ingest::columnar::ColumnarConfig {
                path: file.into(),
                target: None,
                columns: None,
                kinds: Default::default(),
                batch_size: 65_536,
                task: Default::default(),
                label_names: None,
            };
            for _ in 0..repeats {
                let t = Instant::now();
                let r = data_ingest::columnar::load(&config, data_ingest::columnar::Container::Parquet)?;
                println!("{:.6} {}", t.elapsed().as_secs_f64(), r.data.rows());
            }
        }
        Some("make-parquet") => {
            use std::sync::Arc;
            let (csv, out) = (args.get(2).ok_or(usage)?, args.get(3).ok_or(usage)?);
            let fmt = csv_format();
            let table = read(Path::new(csv), "bench", &fmt, &Selection::default())?.table;
            let mut fields = Vec::new();
            let mut columns: Vec<arrow_array::ArrayRef> = Vec::new();
            for c in &table.columns {
                let pipeline_core::raw::Values::Numbers(v) = &c.values else { continue };
                fields.push(arrow_schema::Field::new(&c.name, arrow_schema::DataType::Float64, true));
                columns.push(Arc::new(arrow_array::Float64Array::from(v.clone())));
            }
            let batch = arrow_array::RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)?;
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .set_max_row_group_row_count(Some(131_072))
                .build();
            let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(out)?, batch.schema(), Some(props))?;
            w.write(&batch)?;
            w.close()?;
        }
        Some("images") => {
            let folder = args.get(2).ok_or(usage)?;
            let size: usize = args.get(3).ok_or(usage)?.parse()?;
            let repeats: usize = args.get(4).ok_or(usage)?.parse()?;
            for _ in 0..repeats {
                let t = Instant::now();
                let r = data_ingest::images::read_folder(
                    Path::new(folder),
                    "bench",
                    3,
                    Some((size, size)),
                    OnBadRecord::Fail,
                )?;
                println!("{:.6} {}", t.elapsed().as_secs_f64(), r.images.rows());
            }
        }
        Some("make-images") => {
            let folder = Path::new(args.get(2).ok_or(usage)?);
            let count: usize = args.get(3).ok_or(usage)?.parse()?;
            for i in 0..count {
                let class = folder.join(format!("class{}", i % 4));
                std::fs::create_dir_all(&class)?;
                let img = image::RgbImage::from_fn(96, 96, |x, y| {
                    let v = (x * 7 + y * 3 + i as u32 * 13) % 256;
                    image::Rgb([v as u8, ((x * y) % 256) as u8, ((i * 31) % 256) as u8])
                });
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                img.save(class.join(format!("{i:05}.{ext}")))?;
            }
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}

/// The benchmark CSV's format: comma-separated with a header, default missing markers.
fn csv_format() -> TableFormat {
    TableFormat {
        delimiter: Delimiter::Byte(b','),
        quote: Some(b'"'),
        header: true,
        skip_rows: 0,
        names: None,
        missing: default_missing(),
        on_bad_record: OnBadRecord::Fail,
    }
}
