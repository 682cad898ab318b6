//! The text-lines reader (`data: {format: text}`, e.g. SMS spam): label and text per line,
//! with the first byte choosing separator, header and label position.
#![no_main]

use data_ingest::OnBadRecord;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let sep = ["\t", ",", " ", "::"][usize::from(mode % 4)];
    let on_bad = if mode & 16 == 0 { OnBadRecord::Fail } else { OnBadRecord::Skip };
    let path = common::file("t.txt", body);
    let _ = data_ingest::text::read_lines(&path, "data.path", sep, mode & 4 != 0, mode & 8 == 0, on_bad);
});
