//! Delimited text (CSV, TSV, any one-byte separator) parsed in blocks on every core.
//!
//! A reader thread pulls the file (decompressing and hashing it, see [`Source`]) in blocks of
//! complete records — the partial record at a block's end moves to the next block — and marks
//! where each block can be cut into pieces: at any newline when the block holds no quote
//! character, otherwise at record ends found by a sequential scan (a quoted field may hold
//! newlines). The pieces are parsed in parallel (rayon) into typed column builders, which are
//! then appended in order, so the result is the same as a sequential parse.
//!
//! The dialect is the `csv` crate's with `flexible(true)`: a field that starts with the quote
//! character is quoted (a doubled quote inside is one quote; what follows the closing quote up
//! to the separator is kept), `\n`, `\r\n` and `\r` end records, and blank lines are skipped.
//! Numbers in numeric columns are parsed while the field is scanned: plain decimals of up to 15
//! digits by the exact fast path (an integer mantissa divided by an exact power of ten is
//! correctly rounded), everything else by `fast-float2`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;

use pipeline_core::FeatureKind;
use pipeline_core::raw::Str;
use rayon::prelude::*;

use crate::source::Source;
use crate::{Error, Result};

/// Bytes read per block, and the smallest piece parsed on its own.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    block: usize,
    min_piece: usize,
}

/// Block buffers in circulation.
const BUFFERS: usize = 4;

const SIZES: Sizes = Sizes { block: 4 << 20, min_piece: 1 << 20 };

/// The separator and quote character.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    pub delimiter: u8,
    pub quote: Option<u8>,
}

/// The missing-value tokens (trimmed), and whether one of them reads as a number (so numeric
/// fields must be compared with them before they are parsed).
pub(crate) struct Missing {
    tokens: Vec<Vec<u8>>,
    numeric: bool,
}

impl Missing {
    pub fn new(tokens: &[String]) -> Self {
        let tokens: Vec<Vec<u8>> = tokens.iter().map(|m| m.trim().as_bytes().to_vec()).collect();
        let numeric = tokens.iter().any(|t| parse_number_bytes(t).is_some());
        Self { tokens, numeric }
    }

    /// Whether `b` (trimmed) is a missing token.
    pub fn is(&self, b: &[u8]) -> bool {
        let t = b.trim_ascii();
        self.tokens.iter().any(|m| m.as_slice() == t)
    }
}

/// A finite number from bytes (surrounding ASCII whitespace ignored), or `None`.
pub fn parse_number_bytes(b: &[u8]) -> Option<f64> {
    let b = b.trim_ascii();
    if let Some((v, end)) = simple_decimal(b, 0)
        && end == b.len()
    {
        return Some(v);
    }
    // fast-float2 accepts a leading '+' and inf/nan; reject the latter (NaN means missing here).
    match fast_float2::parse::<f64, _>(b) {
        Ok(v) if v.is_finite() => Some(v),
        _ => None,
    }
}

/// Exact powers of ten as `f64`.
const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/// A plain decimal (`-?digits(.digits)?`, at most 15 digits) starting at `b[i]`: its value and
/// where it stops. The mantissa is below 2^53 and the power of ten exact, so one division is
/// correctly rounded — the same value `fast-float2` gives.
#[inline]
fn simple_decimal(b: &[u8], mut i: usize) -> Option<(f64, usize)> {
    let n = b.len();
    let neg = i < n && b[i] == b'-';
    if neg {
        i += 1;
    }
    let (mut m, first) = (0u64, i);
    i = digits(b, i, &mut m);
    let mut count = i - first;
    let mut frac = 0;
    if i < n && b[i] == b'.' {
        let start = i + 1;
        i = digits(b, start, &mut m);
        frac = i - start;
        count += frac;
    }
    if count == 0 || count > 15 {
        return None;
    }
    // m < 10^15 < 2^53: exact as a signed integer, which converts in one instruction.
    let v = (m as i64) as f64 / POW10[frac];
    Some((if neg { -v } else { v }, i))
}

/// Appends the decimal digits from `b[i]` on to the mantissa `m`; returns where they stop.
#[inline]
fn digits(b: &[u8], mut i: usize, m: &mut u64) -> usize {
    while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
        *m = m.wrapping_mul(10).wrapping_add(u64::from(d));
        i += 1;
    }
    i
}

/// Where the unquoted field at `pos` ends: at the separator, a terminator or the end of data.
#[inline]
fn field_end(data: &[u8], pos: usize, delimiter: u8) -> usize {
    let pos = pos.min(data.len());
    memchr::memchr3(delimiter, b'\n', b'\r', &data[pos..]).map_or(data.len(), |i| pos + i)
}

/// `true`/`false`, `yes`/`no`, `t`/`f`, `y`/`n` in any case (and `1`/`0` when `digits`).
pub fn parse_bool(s: &str, digits: bool) -> Option<f64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "t" | "y" => Some(1.0),
        "false" | "no" | "f" | "n" => Some(0.0),
        "1" if digits => Some(1.0),
        "0" if digits => Some(0.0),
        _ => None,
    }
}

/// A field as text (records are UTF-8-checked before their fields are kept).
pub(crate) fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// Accumulates one column's values in its kind.
#[derive(Debug)]
pub(crate) struct Builder {
    pub kind: FeatureKind,
    pub numbers: Vec<f64>,
    pub strings: Vec<Option<Str>>,
    pub unparsable: usize,
    /// A categorical column's distinct values so far, so that a repeated value shares one string.
    interned: Interner,
}

/// The distinct values of a categorical column: looked up by a scan while there are few, by hash
/// beyond; a column with more than [`Interner::MAX`] distinct values stops adding to it (its
/// later new values get a string each, as text does).
#[derive(Debug, Default)]
struct Interner {
    few: Vec<Str>,
    many: HashMap<Box<[u8]>, Str>,
}

impl Interner {
    const FEW: usize = 16;
    const MAX: usize = 65_536;

    fn get(&mut self, b: &[u8]) -> Str {
        if let Some(s) = self.few.iter().find(|s| s.as_bytes() == b) {
            return s.clone();
        }
        if let Some(s) = self.many.get(b) {
            return s.clone();
        }
        let s: Str = text(b).into();
        if self.few.len() < Self::FEW {
            self.few.push(s.clone());
        } else if self.many.len() < Self::MAX {
            self.many.insert(b.into(), s.clone());
        }
        s
    }
}

impl Builder {
    pub fn new(kind: FeatureKind) -> Self {
        Self { kind, numbers: Vec::new(), strings: Vec::new(), unparsable: 0, interned: Interner::default() }
    }

    fn numeric(&self) -> bool {
        matches!(self.kind, FeatureKind::Numeric | FeatureKind::Boolean)
    }

    fn len(&self) -> usize {
        if self.numeric() { self.numbers.len() } else { self.strings.len() }
    }

    /// Adds a value (`None`: missing), given as the field's bytes (already UTF-8-checked).
    pub fn push(&mut self, value: Option<&[u8]>) {
        match self.kind {
            FeatureKind::Numeric | FeatureKind::Boolean => {
                let v = value.map(|b| {
                    let parsed = if self.kind == FeatureKind::Numeric {
                        parse_number_bytes(b)
                    } else {
                        parse_bool(text(b), true)
                    };
                    parsed.unwrap_or_else(|| {
                        self.unparsable += 1;
                        f64::NAN
                    })
                });
                self.numbers.push(v.unwrap_or(f64::NAN));
            }
            FeatureKind::Categorical => {
                let v = value.map(|b| self.interned.get(b));
                self.strings.push(v);
            }
            FeatureKind::Text => self.strings.push(value.map(|b| text(b).into())),
        }
    }

    /// Adds the field's bytes, missing when they are a missing token.
    pub fn push_field(&mut self, b: &[u8], missing: &Missing) {
        self.push((!missing.is(b)).then_some(b));
    }

    /// Makes room for `n` more values.
    pub fn reserve(&mut self, n: usize) {
        if self.numeric() {
            self.numbers.reserve(n);
            crate::hugepages::advise(&self.numbers);
        } else {
            self.strings.reserve(n);
            crate::hugepages::advise(&self.strings);
        }
    }

    pub(crate) fn empty_like(&self) -> Self {
        Self::new(self.kind)
    }

    fn truncate(&mut self, len: usize) {
        self.numbers.truncate(len);
        self.strings.truncate(len);
    }

    /// Moves `other`'s values to the end of these, leaving it empty (with its capacity).
    fn append(&mut self, other: &mut Builder) {
        self.numbers.append(&mut other.numbers);
        self.strings.append(&mut other.strings);
        self.unparsable += std::mem::take(&mut other.unparsable);
    }
}

/// Where one field's value goes.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// Not read.
    Skip,
    /// Into one builder.
    One(usize),
    /// Into several (a column selected twice).
    Many(Vec<usize>),
}

/// Adds a whole record's fields to the builders their slots name.
pub(crate) fn push_record(rec: &csv::ByteRecord, slots: &[Slot], builders: &mut [Builder], missing: &Missing) {
    for (field, slot) in rec.iter().zip(slots) {
        match slot {
            Slot::Skip => {}
            Slot::One(b) => builders[*b].push_field(field, missing),
            Slot::Many(bs) => bs.iter().for_each(|&b| builders[b].push_field(field, missing)),
        }
    }
}

/// One record, as the sequential stages (skipped lines, header, inference sample) see it.
pub(crate) enum Event<'a> {
    /// A record and its 1-based line.
    Record(u64, &'a csv::ByteRecord),
    /// A bad record (not UTF-8) and why.
    Bad(u64, String),
    /// A streamed read's builders after a block: the stage takes their values (the read goes on
    /// into the emptied builders).
    Chunk(&'a mut Vec<Builder>),
}

/// What a stage says after a record: go on with records, or switch to the typed bulk parse.
pub(crate) enum Next {
    /// Hand over the next record too.
    More,
    /// Parse the rest into these builders, with this field → builder map and field count.
    Bulk { slots: Vec<Slot>, builders: Vec<Builder>, fields: usize },
}

/// The typed parse's results.
pub(crate) struct Parsed {
    /// The builders, filled.
    pub builders: Vec<Builder>,
    /// Records kept by the bulk parse.
    pub records: usize,
    /// Bad records met by the bulk parse: line and reason, in file order.
    pub bad: Vec<(u64, String)>,
}

/// Reads `source` after `skip_rows` raw lines: records go one by one to `stage` until it
/// returns [`Next::Bulk`]; the rest are parsed in parallel into its builders. With `fail`, the
/// first bad record of the bulk parse stops it. With `stream`, the builders go to `stage` as an
/// [`Event::Chunk`] after every block, so only a block's values are held at once. Returns
/// `None` when the stage never asked for the bulk parse (the file ended first).
pub(crate) fn read(
    source: &mut Source,
    dialect: Dialect,
    skip_rows: usize,
    missing: &Missing,
    fail: bool,
    stream: bool,
    stage: &mut dyn FnMut(Event<'_>) -> Result<Next>,
) -> Result<Option<Parsed>> {
    read_sized(source, dialect, skip_rows, missing, fail, stream, stage, SIZES)
}

#[allow(clippy::too_many_arguments, reason = "the stages' settings, passed through from read")]
fn read_sized(
    source: &mut Source,
    dialect: Dialect,
    skip_rows: usize,
    missing: &Missing,
    fail: bool,
    stream: bool,
    stage: &mut dyn FnMut(Event<'_>) -> Result<Next>,
    sizes: Sizes,
) -> Result<Option<Parsed>> {
    let path = source.path().to_path_buf();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Result<Block>>(2);
        let (back, recycled) = mpsc::channel::<Vec<u8>>();
        let reader = source.reader();
        scope.spawn(move || blocks(reader, &path, dialect, skip_rows, sizes, &tx, &recycled));
        let mut line = skip_rows as u64 + 1;
        let mut bulk: Option<(Vec<Slot>, usize, Parsed)> = None;
        let mut record = csv::ByteRecord::new();
        let mut spare: Vec<Vec<Builder>> = Vec::new();
        for block in rx.iter() {
            let block = block?;
            let data = &block.data;
            let mut pos = 0;
            while bulk.is_none() && pos < data.len() {
                let (next, newlines) = one_record(data, pos, dialect, &mut record);
                let at = line + leading_blank_lines(data, pos);
                line += newlines;
                pos = next;
                if record.is_empty() {
                    continue;
                }
                let event = match utf8_error(&record) {
                    None => Event::Record(at, &record),
                    Some(reason) => Event::Bad(at, reason),
                };
                if let Next::Bulk { slots, builders, fields } = stage(event)? {
                    bulk = Some((slots, fields, Parsed { builders, records: 0, bad: Vec::new() }));
                }
            }
            if let Some((slots, fields, parsed)) = bulk.as_mut() {
                let cuts: Vec<usize> = std::iter::once(pos)
                    .chain(block.cuts.iter().copied().filter(|&c| c > pos && c < data.len()))
                    .chain(std::iter::once(data.len()))
                    .collect();
                // Each piece fills a set of builders kept from an earlier block when there is
                // one: their pages are already mapped, so only the final columns take page faults.
                let jobs: Vec<(&[usize], Vec<Builder>)> = cuts
                    .windows(2)
                    .map(|w| {
                        (w, spare.pop().unwrap_or_else(|| parsed.builders.iter().map(Builder::empty_like).collect()))
                    })
                    .collect();
                let pieces: Vec<PieceOut> = jobs
                    .into_par_iter()
                    .map(|(w, builders)| piece(&data[w[0]..w[1]], dialect, missing, slots, builders, *fields, fail))
                    .collect();
                let mut columns: Vec<Vec<Builder>> = parsed.builders.iter().map(|_| Vec::new()).collect();
                for p in pieces {
                    if let Some(&(rel, ref reason)) = p.bad.first()
                        && fail
                    {
                        let bad = vec![(line + rel, reason.clone())];
                        return Ok(Some(Parsed { builders: Vec::new(), records: 0, bad }));
                    }
                    parsed.bad.extend(p.bad.into_iter().map(|(rel, reason)| (line + rel, reason)));
                    line += p.newlines;
                    parsed.records += p.records;
                    for (c, o) in columns.iter_mut().zip(p.builders) {
                        c.push(o);
                    }
                }
                // Column by column on every core: the copies touch fresh pages.
                parsed.builders.par_iter_mut().zip(columns.par_iter_mut()).for_each(|(b, parts)| {
                    parts.iter_mut().for_each(|o| b.append(o));
                });
                let sets = columns.first().map_or(0, Vec::len);
                for _ in 0..sets {
                    spare.push(columns.iter_mut().filter_map(Vec::pop).collect());
                }
                if stream {
                    stage(Event::Chunk(&mut parsed.builders))?;
                }
            }
            let _ = back.send(block.data);
        }
        Ok(bulk.map(|(_, _, p)| p))
    })
}

/// A block of complete records and where it may be cut into pieces.
struct Block {
    data: Vec<u8>,
    cuts: Vec<usize>,
}

/// The reader thread: skips `skip_rows` raw lines, then sends blocks of complete records.
fn blocks(
    reader: &mut (dyn std::io::BufRead + Send),
    path: &Path,
    dialect: Dialect,
    skip_rows: usize,
    sizes: Sizes,
    tx: &mpsc::SyncSender<Result<Block>>,
    recycled: &mpsc::Receiver<Vec<u8>>,
) {
    let io = |e: std::io::Error| Error::io(path, e);
    let mut sink = Vec::new();
    for _ in 0..skip_rows {
        sink.clear();
        if let Err(e) = reader.read_until(b'\n', &mut sink) {
            let _ = tx.send(Err(io(e)));
            return;
        }
    }
    let pieces = 2 * rayon::current_num_threads().max(1);
    let mut carry: Vec<u8> = Vec::new();
    // A few buffers go round between this thread and the parser (two queued, one being
    // parsed, one being filled); fresh ones would each cost their page faults again.
    let mut made = 0;
    let mut unsent: Option<Vec<u8>> = None;
    loop {
        let mut data = match unsent.take().map_or_else(|| recycled.try_recv(), Ok) {
            Ok(d) => d,
            Err(_) if made < BUFFERS => {
                made += 1;
                Vec::with_capacity(sizes.block)
            }
            Err(_) => match recycled.recv() {
                Ok(d) => d,
                Err(_) => return,
            },
        };
        data.clear();
        // A block holds `block` bytes, the carried partial record included (more only when
        // one record is longer than that).
        let target = sizes.block.max(2 * carry.len());
        data.reserve(target);
        data.extend_from_slice(&carry);
        let eof = match fill(reader, &mut data, target) {
            Ok(eof) => eof,
            Err(e) => {
                let _ = tx.send(Err(io(e)));
                return;
            }
        };
        let piece = (data.len() / pieces).max(sizes.min_piece);
        let (end, cuts) = boundaries(&data, dialect, piece, eof);
        carry.clear();
        carry.extend_from_slice(&data[end..]);
        data.truncate(end);
        if data.is_empty() {
            // No record ended in it yet: the buffer stays here for the next, longer read.
            unsent = Some(data);
        } else if tx.send(Ok(Block { data, cuts })).is_err() {
            return;
        }
        if eof {
            return;
        }
    }
}

/// Reads until `data` holds `target` bytes or the input ends (then `true`). Large reads go
/// straight into `data`, past the reader's buffer.
fn fill(reader: &mut dyn std::io::BufRead, data: &mut Vec<u8>, target: usize) -> std::io::Result<bool> {
    use std::io::Read;
    let want = target.saturating_sub(data.len());
    let got = reader.take(want as u64).read_to_end(data)?;
    Ok(got < want)
}

/// Where the complete records of `data` end, and cut points (record starts) about `piece`
/// bytes apart. At the end of input every byte belongs to a complete record.
fn boundaries(data: &[u8], dialect: Dialect, piece: usize, eof: bool) -> (usize, Vec<usize>) {
    let quoted = dialect.quote.is_some_and(|q| memchr::memchr(q, data).is_some());
    if !quoted {
        let end = if eof { data.len() } else { memchr::memrchr(b'\n', data).map_or(0, |i| i + 1) };
        let mut cuts = Vec::new();
        let mut at = piece;
        while at < end {
            match memchr::memchr(b'\n', &data[at..end]) {
                Some(i) if at + i + 1 < end => {
                    cuts.push(at + i + 1);
                    at += i + 1 + piece;
                }
                _ => break,
            }
        }
        return (end, cuts);
    }
    // A quoted field may hold newlines: walk record by record.
    let mut cuts = Vec::new();
    let mut pos = 0;
    let mut next_cut = piece;
    while pos < data.len() {
        match record_end(data, pos, dialect, eof) {
            Some(next) => {
                pos = next;
                if pos >= next_cut && pos < data.len() {
                    cuts.push(pos);
                    next_cut = pos + piece;
                }
            }
            None => break,
        }
    }
    (pos, cuts)
}

/// The end of the record that starts at `pos` (after its terminator), or `None` when `data`
/// ends inside it and more input follows.
fn record_end(data: &[u8], mut pos: usize, d: Dialect, eof: bool) -> Option<usize> {
    let n = data.len();
    loop {
        // One field.
        if let Some(q) = d.quote
            && pos < n
            && data[pos] == q
        {
            pos += 1;
            loop {
                match memchr::memchr(q, &data[pos..]) {
                    Some(i) if pos + i + 1 < n && data[pos + i + 1] == q => pos += i + 2,
                    Some(i) => {
                        pos += i + 1;
                        break;
                    }
                    None => return eof.then_some(n),
                }
            }
        }
        match memchr::memchr3(d.delimiter, b'\n', b'\r', &data[pos.min(n)..]) {
            None => return eof.then_some(n),
            Some(i) => {
                let at = pos + i;
                let b = data[at];
                if b == d.delimiter {
                    pos = at + 1;
                    continue;
                }
                if b == b'\r' {
                    if at + 1 < n {
                        return Some(if data[at + 1] == b'\n' { at + 2 } else { at + 1 });
                    }
                    return eof.then_some(n);
                }
                return Some(at + 1);
            }
        }
    }
}

/// The newlines of the blank lines at `pos` (skipped before a record).
fn leading_blank_lines(data: &[u8], mut pos: usize) -> u64 {
    let mut lines = 0;
    while pos < data.len() && matches!(data[pos], b'\n' | b'\r') {
        lines += u64::from(data[pos] == b'\n');
        pos += 1;
    }
    lines
}

/// Parses the record at `pos` (blank lines before it skipped) into `record`, which is left
/// empty when only blank lines were left. Returns where the next record starts and the
/// newlines consumed.
fn one_record(data: &[u8], mut pos: usize, d: Dialect, record: &mut csv::ByteRecord) -> (usize, u64) {
    record.clear();
    let n = data.len();
    let mut newlines = 0;
    while pos < n && matches!(data[pos], b'\n' | b'\r') {
        newlines += u64::from(data[pos] == b'\n');
        pos += 1;
    }
    if pos >= n {
        return (pos, newlines);
    }
    let mut field = Vec::new();
    loop {
        let (end, nl) = field_bytes(data, pos, d, &mut field);
        newlines += nl;
        record.push_field(&field);
        let (next, done, nl) = after_field(data, end, d.delimiter);
        newlines += nl;
        pos = next;
        if done {
            return (pos, newlines);
        }
    }
}

/// What follows a field that ends at `end`: the next position, whether the record ended, and
/// the newline consumed.
#[inline]
fn after_field(data: &[u8], end: usize, delimiter: u8) -> (usize, bool, u64) {
    if end >= data.len() {
        return (data.len(), true, 0);
    }
    match data[end] {
        b if b == delimiter => (end + 1, false, 0),
        b'\r' if data.get(end + 1) == Some(&b'\n') => (end + 2, true, 1),
        b'\r' => (end + 1, true, 0),
        _ => (end + 1, true, 1),
    }
}

/// The field at `pos`, unescaped into `out`: returns where it ends (at the separator, the
/// terminator or the end of data) and the newlines inside it.
fn field_bytes(data: &[u8], mut pos: usize, d: Dialect, out: &mut Vec<u8>) -> (usize, u64) {
    out.clear();
    let n = data.len();
    let mut newlines = 0;
    if let Some(q) = d.quote
        && pos < n
        && data[pos] == q
    {
        pos += 1;
        loop {
            match memchr::memchr(q, &data[pos..]) {
                Some(i) => {
                    out.extend_from_slice(&data[pos..pos + i]);
                    newlines += memchr::memchr_iter(b'\n', &data[pos..pos + i]).count() as u64;
                    pos += i + 1;
                    if pos < n && data[pos] == q {
                        out.push(q);
                        pos += 1;
                    } else {
                        break;
                    }
                }
                None => {
                    out.extend_from_slice(&data[pos..]);
                    newlines += memchr::memchr_iter(b'\n', &data[pos..]).count() as u64;
                    return (n, newlines);
                }
            }
        }
    }
    let end = field_end(data, pos, d.delimiter);
    out.extend_from_slice(&data[pos.min(n)..end]);
    (end, newlines)
}

/// Why a record is not UTF-8, or `None`.
pub(crate) fn utf8_error(rec: &csv::ByteRecord) -> Option<String> {
    if std::str::from_utf8(rec.as_slice()).is_ok() {
        return None;
    }
    let (j, at) = rec
        .iter()
        .enumerate()
        .find_map(|(j, b)| std::str::from_utf8(b).err().map(|e| (j, e.valid_up_to())))
        .unwrap_or((0, 0));
    Some(format!("field {} is not valid UTF-8 (byte {at})", j + 1))
}

/// One piece's results; lines are relative to the piece's first line.
struct PieceOut {
    builders: Vec<Builder>,
    records: usize,
    bad: Vec<(u64, String)>,
    newlines: u64,
}

/// Parses a piece of complete records into `builders` (empty; their capacity is reused).
#[allow(clippy::too_many_arguments, reason = "one call site; the parse's whole context")]
fn piece(
    data: &[u8],
    d: Dialect,
    missing: &Missing,
    slots: &[Slot],
    mut builders: Vec<Builder>,
    fields: usize,
    fail: bool,
) -> PieceOut {
    let scratch = &mut Vec::new();
    // At most one record per line: room for all, so the columns never grow by copying.
    let lines = memchr::memchr_iter(b'\n', data).count() + 1;
    builders.iter_mut().for_each(|b| b.reserve(lines));
    let check_utf8 = std::str::from_utf8(data).is_err();
    let fast: Vec<bool> = builders.iter().map(|b| b.kind == FeatureKind::Numeric && !missing.numeric).collect();
    let mut out = PieceOut { builders: Vec::new(), records: 0, bad: Vec::new(), newlines: 0 };
    let mut unparsable: Vec<usize> = builders.iter().map(|b| b.unparsable).collect();
    let n = data.len();
    let mut pos = 0;
    let mut line = 0u64;
    while pos < n {
        match data[pos] {
            b'\n' => {
                line += 1;
                pos += 1;
                continue;
            }
            b'\r' => {
                pos += 1;
                continue;
            }
            _ => {}
        }
        let start = pos;
        let at = line;
        let mut field = 0;
        loop {
            let slot = slots.get(field).unwrap_or(&Slot::Skip);
            let quoted = d.quote.is_some_and(|q| pos < n && data[pos] == q);
            let end = match slot {
                Slot::One(b) if fast[*b] && !quoted => match simple_decimal(data, pos) {
                    Some((v, e)) if e >= n || matches!(data[e], b'\n' | b'\r') || data[e] == d.delimiter => {
                        builders[*b].numbers.push(v);
                        e
                    }
                    _ => {
                        let e = field_end(data, pos, d.delimiter);
                        builders[*b].push_field(&data[pos..e], missing);
                        e
                    }
                },
                Slot::Skip if !quoted => field_end(data, pos, d.delimiter),
                Slot::One(b) if !quoted => {
                    let e = field_end(data, pos, d.delimiter);
                    builders[*b].push_field(&data[pos..e], missing);
                    e
                }
                _ => {
                    let (e, nl) = field_bytes(data, pos, d, scratch);
                    line += nl;
                    match slot {
                        Slot::Skip => {}
                        Slot::One(b) => builders[*b].push_field(scratch, missing),
                        Slot::Many(bs) => bs.iter().for_each(|&b| builders[b].push_field(scratch, missing)),
                    }
                    e
                }
            };
            field += 1;
            let (next, done, nl) = after_field(data, end, d.delimiter);
            line += nl;
            pos = next;
            if done {
                break;
            }
        }
        let reason = if check_utf8 && std::str::from_utf8(&data[start..pos]).is_err() {
            let mut rec = csv::ByteRecord::new();
            one_record(data, start, d, &mut rec);
            utf8_error(&rec)
        } else if field != fields {
            Some(format!("expected {fields} fields, found {field}"))
        } else {
            None
        };
        match reason {
            None => {
                out.records += 1;
                for (u, b) in unparsable.iter_mut().zip(&builders) {
                    *u = b.unparsable;
                }
            }
            Some(reason) => {
                for (b, u) in builders.iter_mut().zip(&unparsable) {
                    b.truncate(out.records);
                    b.unparsable = *u;
                }
                out.bad.push((at, reason));
                if fail {
                    break;
                }
            }
        }
    }
    debug_assert!(builders.iter().all(|b| b.len() == out.records));
    out.builders = builders;
    out.newlines = line;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn a_categorical_column_shares_one_string_per_value_and_text_does_not() {
        let missing = Missing::new(&["NA".to_string()]);
        let mut cat = Builder::new(FeatureKind::Categorical);
        let mut txt = Builder::new(FeatureKind::Text);
        // More distinct values than the scanned few, so the hashed ones are exercised too.
        let values: Vec<String> = (0..1000).map(|i| format!("v{}", i % 40)).chain(["NA".into()]).collect();
        for v in &values {
            cat.push_field(v.as_bytes(), &missing);
            txt.push_field(v.as_bytes(), &missing);
        }
        assert_eq!(cat.strings.len(), 1001);
        assert_eq!(cat.strings[1000], None);
        for (i, v) in values[..1000].iter().enumerate() {
            assert_eq!(cat.strings[i].as_deref(), Some(v.as_str()));
            assert_eq!(txt.strings[i].as_deref(), Some(v.as_str()));
        }
        let same = |b: &Builder, i: usize, j: usize| {
            std::sync::Arc::ptr_eq(b.strings[i].as_ref().unwrap(), b.strings[j].as_ref().unwrap())
        };
        assert!(same(&cat, 3, 43) && same(&cat, 39, 999), "a repeated category is one string");
        assert!(!same(&txt, 3, 43), "text values are not interned");
    }

    /// Every record of `text` as `read_sized` gives it with tiny blocks and pieces (every field
    /// read as text, or as numbers), with its line; bad records as `Err(line)`.
    /// With `stream`, the values are collected from the chunks a streamed read hands over.
    fn ours(text: &[u8], numbers: bool, sizes: Sizes, stream: bool) -> (Vec<(u64, Vec<String>)>, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, text).unwrap();
        let mut source = Source::open(&p, "t").unwrap();
        let missing = Missing::new(&[]);
        let dialect = Dialect { delimiter: b',', quote: Some(b'"') };
        let mut first: Option<(u64, Vec<String>)> = None;
        let mut width = 0;
        let mut streamed: Vec<Builder> = Vec::new();
        let mut stage = |e: Event<'_>| -> Result<Next> {
            if let Event::Chunk(builders) = e {
                if streamed.is_empty() {
                    streamed = builders.iter().map(Builder::empty_like).collect();
                }
                streamed.iter_mut().zip(builders.iter_mut()).for_each(|(a, b)| a.append(b));
                return Ok(Next::More);
            }
            let Event::Record(line, rec) = e else { panic!("the first record is UTF-8") };
            first = Some((line, rec.iter().map(|f| text_of(f, numbers)).collect()));
            width = rec.len();
            let kind = if numbers { FeatureKind::Numeric } else { FeatureKind::Categorical };
            let builders = (0..width).map(|_| Builder::new(kind)).collect();
            Ok(Next::Bulk { slots: (0..width).map(Slot::One).collect(), builders, fields: width })
        };
        let parsed = read_sized(&mut source, dialect, 0, &missing, false, stream, &mut stage, sizes).unwrap();
        let mut rows = vec![first.unwrap()];
        let Some(mut parsed) = parsed else { return (rows, Vec::new()) };
        if stream {
            assert!(parsed.builders.iter().all(|b| b.len() == 0), "a streamed read hands over every value");
            if !streamed.is_empty() {
                parsed.builders = streamed;
            }
        }
        for r in 0..parsed.records {
            let row = parsed
                .builders
                .iter()
                .map(|b| match numbers {
                    true => format!("{:?}", b.numbers[r]),
                    false => b.strings[r].as_deref().unwrap().to_string(),
                })
                .collect();
            rows.push((0, row));
        }
        (rows, parsed.bad.iter().map(|(l, _)| *l).collect())
    }

    fn text_of(field: &[u8], numbers: bool) -> String {
        match numbers {
            true => {
                let v = fast_float2::parse::<f64, _>(field.trim_ascii()).unwrap_or(f64::NAN);
                format!("{:?}", if v.is_finite() { v } else { f64::NAN })
            }
            false => String::from_utf8_lossy(field).into_owned(),
        }
    }

    /// The same through the `csv` crate, the dialect's reference (with physical line numbers).
    fn reference(text: &[u8], numbers: bool) -> (Vec<(u64, Vec<String>)>, Vec<u64>) {
        let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text);
        let mut rows = Vec::new();
        let mut bad = Vec::new();
        let mut width = None;
        for rec in r.byte_records() {
            let rec = rec.unwrap();
            // The physical line where the record starts: the crate's own line number is the
            // previous record's end, before the `\n` of a `\r\n` and before blank lines.
            let mut start = rec.position().unwrap().byte() as usize;
            while start < text.len() && b"\r\n".contains(&text[start]) {
                start += 1;
            }
            let line = 1 + memchr::memchr_iter(b'\n', &text[..start]).count() as u64;
            let w = *width.get_or_insert(rec.len());
            if std::str::from_utf8(rec.as_slice()).is_err() || rec.len() != w {
                bad.push(line);
                continue;
            }
            let row: Vec<String> = rec.iter().map(|f| text_of(f, numbers)).collect();
            rows.push((if rows.is_empty() { line } else { 0 }, row));
        }
        (rows, bad)
    }

    #[test]
    fn random_tables_parse_as_the_csv_crate_does_in_any_blocks_and_pieces() {
        let alphabet: &[&[u8]] = &[
            b"1",
            b"23",
            b"-4.5",
            b"0.25",
            b"7e2",
            b"x",
            b"y z",
            b",",
            b",",
            b",",
            b"\"",
            b"\"\"",
            b"\n",
            b"\n",
            b"\r\n",
            b"\r",
            b" ",
            b"\xc3\xa9",
            b"\xff",
            b"NA",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for case in 0..400 {
            let mut text = b"h1,h2,h3\n".to_vec();
            // Mostly regular rows of 3 fields, with random noise.
            let rows = rng.random_range(1..40);
            for _ in 0..rows {
                for f in 0..3 {
                    if f > 0 {
                        text.push(b',');
                    }
                    for _ in 0..rng.random_range(0..4) {
                        text.extend_from_slice(alphabet[rng.random_range(0..alphabet.len())]);
                    }
                }
                text.push(b'\n');
            }
            if rng.random_bool(0.3) {
                text.pop();
            }
            let block = rng.random_range(1..64);
            let sizes = Sizes { block, min_piece: rng.random_range(1..16) };
            let numbers = case % 2 == 1;
            let (want_rows, want_bad) = reference(&text, numbers);
            let (got_rows, got_bad) = ours(&text, numbers, sizes, rng.random_bool(0.5));
            let shown = String::from_utf8_lossy(&text);
            assert_eq!(got_rows, want_rows, "case {case}, block {block}: {shown:?}");
            assert_eq!(got_bad, want_bad, "case {case}, block {block}: {shown:?}");
        }
    }

    #[test]
    fn the_fast_path_gives_fast_float_values() {
        for s in
            ["0", "-0", "1.5", "0.859794", "39.4301", "-0.11647", "604.78", "123456789012345", "0.00000000000001", "5."]
        {
            let fast = simple_decimal(s.as_bytes(), 0).map(|(v, _)| v);
            let reference = fast_float2::parse::<f64, _>(s).ok();
            assert_eq!(fast.map(f64::to_bits), reference.map(f64::to_bits), "{s}");
        }
        assert_eq!(simple_decimal(b"1234567890123456", 0), None);
        assert_eq!(simple_decimal(b"-", 0), None);
        assert_eq!(parse_number_bytes(b" 1e3 "), Some(1000.0));
        assert_eq!(parse_number_bytes(b"inf"), None);
    }
}
