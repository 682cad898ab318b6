//! The CSV / TSV table reader of `data: {format: csv}`: any bytes, read with kinds inferred,
//! as the first ingest of a pipeline does; with the first byte choosing the dialect.
#![no_main]

use data_ingest::table::{Delimiter, OnBadRecord, Selection, TableFormat, default_missing, read};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let fmt = TableFormat {
        delimiter: match mode % 4 {
            0 => Delimiter::Byte(b','),
            1 => Delimiter::Byte(b'\t'),
            2 => Delimiter::Byte(b';'),
            _ => Delimiter::Whitespace,
        },
        quote: if mode & 4 == 0 { Some(b'"') } else { None },
        header: mode & 8 == 0,
        skip_rows: usize::from((mode >> 4) & 1),
        names: None,
        missing: default_missing(),
        on_bad_record: if mode & 32 == 0 { OnBadRecord::Fail } else { OnBadRecord::Skip },
    };
    let target = if mode & 64 == 0 { None } else { Some(data_ingest::ColumnRef::Index(0)) };
    let sel = Selection { target, features: None, kinds: Default::default(), require_kinds: false };
    let path = common::file(if mode & 128 == 0 { "t.csv" } else { "t.csv.gz" }, body);
    let _ = read(&path, "data.path", &fmt, &sel);
});
