//! A CSV record reader for the plain lines most data files are made of, falling back to the
//! `csv` crate for everything else.
//!
//! Why: a step spends most of its time splitting lines, and the `csv` crate's state machine
//! works byte by byte, which compiled to WebAssembly costs far more than it does natively.
//! A line with no quote and no stray carriage return splits at its commas exactly as the
//! `csv` crate would split it, and finding commas and line ends eight bytes at a time (one
//! 64-bit word) is cheap in both. At the first line that holds a quote or a lone carriage
//! return, the rest of the input goes to the `csv` crate, so quoted fields (with commas or
//! line breaks inside) read as they always did.
//!
//! Behaves like `csv::ReaderBuilder::new().has_headers(true)`: comma-separated, `"` quotes,
//! `\n`, `\r\n` or `\r` ends a record, empty lines are skipped, a UTF-8 byte-order mark
//! before the header is dropped, and every record must have as many fields as the header.

use std::io::{Chain, Cursor, Read};
use std::path::Path;

use crate::{StepError, io_error};

mod scan;

use scan::{Scan, scan};

/// One record's fields.
pub struct Record<'a> {
    fields: Fields<'a>,
}

enum Fields<'a> {
    /// A plain line, the offsets where its kept fields end, and its number of fields.
    Line(&'a [u8], &'a [usize], usize),
    Csv(&'a csv::ByteRecord),
}

impl Record<'_> {
    /// The field at `index`, if the record has one (and, after [`Records::keep_first`],
    /// if it is among the fields kept).
    #[inline]
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        match self.fields {
            Fields::Line(line, ends, _) => {
                let end = *ends.get(index)?;
                let start = if index == 0 { 0 } else { ends[index - 1] + 1 };
                Some(&line[start..end])
            }
            Fields::Csv(record) => record.get(index),
        }
    }

    /// The number of fields.
    #[inline]
    pub fn len(&self) -> usize {
        match self.fields {
            Fields::Line(_, _, fields) => fields,
            Fields::Csv(record) => record.len(),
        }
    }

    /// Whether the record has no fields (never, for a record read from a file).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads CSV records from `R`; see the module docs.
pub struct Records<R: Read> {
    input: Option<R>,
    buf: Vec<u8>,
    /// The unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    /// Where the kept fields of the current line end, relative to its start.
    ends: Vec<usize>,
    /// How many fields of a line to keep; the rest are only counted.
    keep: usize,
    /// Commas seen so far in the current line.
    commas: usize,
    /// The current line's length without its terminator, once split.
    line_len: Option<usize>,
    /// The physical line the next record starts on.
    line: u64,
    header: Option<csv::StringRecord>,
    slow: Option<Slow<R>>,
}

/// The `csv` crate reading the rest of the input after the first line it is needed for.
struct Slow<R: Read> {
    reader: csv::Reader<Chain<Cursor<Vec<u8>>, R>>,
    record: csv::ByteRecord,
    /// Lines read before it took over, to number its lines as the file's.
    lines_before: u64,
}

impl<R: Read> Records<R> {
    /// A reader over `input` with a buffer of 256 KiB.
    pub fn new(input: R) -> Records<R> {
        Records::with_capacity(256 * 1024, input)
    }

    /// A reader over `input` with a buffer of `capacity` bytes (grown for a longer line).
    pub fn with_capacity(capacity: usize, input: R) -> Records<R> {
        Records {
            input: Some(input),
            buf: vec![0; capacity.max(8)],
            start: 0,
            end: 0,
            eof: false,
            ends: Vec::new(),
            keep: usize::MAX,
            commas: 0,
            line_len: None,
            line: 1,
            header: None,
            slow: None,
        }
    }

    /// The header record, read on first call. `path` names the file in errors.
    pub fn headers(&mut self, path: &Path) -> Result<&csv::StringRecord, StepError> {
        if self.header.is_none() {
            self.fill(path)?;
            if self.buf[self.start..self.end].starts_with(b"\xEF\xBB\xBF") {
                self.start += 3;
            }
            let header = match self.next_record(path, None)? {
                Some(record) => {
                    let fields = (0..record.len())
                        .map(|i| String::from_utf8(record.get(i).unwrap_or_default().to_vec()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| {
                            StepError::BadInput(format!(
                                "`{}`: the header line is not UTF-8",
                                path.display()
                            ))
                        })?;
                    csv::StringRecord::from(fields)
                }
                None => csv::StringRecord::new(),
            };
            self.header = Some(header);
        }
        Ok(self.header.as_ref().expect("read above"))
    }

    /// Keeps only the first `fields` fields of each data record from now on: the others
    /// are still counted (a record must be as wide as the header) but [`Record::get`]
    /// returns `None` for them. Saves the work of noting where each unused field ends.
    pub fn keep_first(&mut self, fields: usize) {
        self.keep = fields.max(1);
    }

    /// The next data record, or `None` at the end of the input. A record whose field count
    /// differs from the header's is bad input naming its line.
    pub fn read(&mut self, path: &Path) -> Result<Option<Record<'_>>, StepError> {
        let width = self.headers(path)?.len();
        self.next_record(path, Some(width))
    }

    fn next_record(
        &mut self,
        path: &Path,
        width: Option<usize>,
    ) -> Result<Option<Record<'_>>, StepError> {
        if self.slow.is_none() {
            match self.next_line(path)? {
                Some(true) => {
                    let len = self.line_len.expect("a split line has a length");
                    let line = &self.buf[self.start..self.start + len];
                    let fields = self.commas + 1;
                    check_width(path, self.line - 1, fields, width)?;
                    return Ok(Some(Record {
                        fields: Fields::Line(line, &self.ends, fields),
                    }));
                }
                None => return Ok(None),
                Some(false) => self.hand_over(),
            }
        }
        let slow = self.slow.as_mut().expect("handed over above");
        let more = slow
            .reader
            .read_byte_record(&mut slow.record)
            .map_err(|e| match e.kind() {
                csv::ErrorKind::Io(e) => io_error(path, e),
                _ => StepError::BadInput(format!("`{}`: {e}", path.display())),
            })?;
        if !more {
            return Ok(None);
        }
        let line = slow.lines_before + slow.record.position().map_or(1, |p| p.line());
        check_width(path, line, slow.record.len(), width)?;
        Ok(Some(Record {
            fields: Fields::Csv(&slow.record),
        }))
    }

    /// Finds the next non-empty line. `Some(true)`: a plain line, split into `self.ends`,
    /// starting at `self.start` (which the next call moves past it). `Some(false)`: the
    /// line at `self.start` needs the `csv` crate. `None`: the input has ended.
    fn next_line(&mut self, path: &Path) -> Result<Option<bool>, StepError> {
        // Step past the line returned last time, if any.
        if let Some(len) = self.line_len.take() {
            self.start += len;
            self.skip_terminator();
        }
        loop {
            if self.start == self.end {
                if self.eof {
                    return Ok(None);
                }
                self.fill(path)?;
                continue;
            }
            match self.split_line() {
                Some(true) if self.line_len == Some(0) => {
                    // An empty line: no record, as in the `csv` crate.
                    self.line_len = None;
                    self.skip_terminator();
                    self.line += 1;
                }
                Some(plain) => {
                    if plain {
                        self.line += 1;
                    }
                    return Ok(Some(plain));
                }
                None => self.fill(path)?,
            }
        }
    }

    /// Steps over one `\n` or `\r\n` at `self.start`, if the line ended with one.
    fn skip_terminator(&mut self) {
        let rest = &self.buf[self.start..self.end];
        if rest.starts_with(b"\r\n") {
            self.start += 2;
        } else if rest.starts_with(b"\n") {
            self.start += 1;
        }
    }

    /// Splits the line at `self.start` at its commas into `self.ends`. `None`: the buffer
    /// ends before the line does (and more input may come); `Some(false)`: the line holds
    /// a quote or a carriage return not right before its `\n`.
    fn split_line(&mut self) -> Option<bool> {
        // The scan works on locals, which the compilers keep in registers; fields of
        // `self` would be reloaded after every store into `ends`.
        let mut ends = std::mem::take(&mut self.ends);
        ends.clear();
        let mut commas = 0;
        let bytes = &self.buf[self.start..self.end];
        let scanned = scan(bytes, self.eof, self.keep, &mut ends, &mut commas);
        self.ends = ends;
        self.commas = commas;
        match scanned {
            Scan::Line(len) => {
                self.line_len = Some(len);
                Some(true)
            }
            Scan::Csv => Some(false),
            Scan::More => None,
        }
    }

    /// Moves the unread bytes to the front and reads more after them, growing the buffer
    /// when a line fills it.
    fn fill(&mut self, path: &Path) -> Result<(), StepError> {
        if self.eof {
            return Ok(());
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        if self.end == self.buf.len() {
            let bigger = self.buf.len() * 2;
            self.buf.resize(bigger, 0);
        }
        let input = self.input.as_mut().expect("input is kept until hand-over");
        loop {
            match input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(path, e)),
            }
        }
    }

    /// Gives the unread bytes and the rest of the input to the `csv` crate.
    fn hand_over(&mut self) {
        let rest = self.buf[self.start..self.end].to_vec();
        let input = self.input.take().expect("handed over once");
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(Cursor::new(rest).chain(input));
        self.slow = Some(Slow {
            reader,
            record: csv::ByteRecord::new(),
            lines_before: self.line - 1,
        });
        self.buf = Vec::new();
    }
}

#[inline]
fn check_width(
    path: &Path,
    line: u64,
    found: usize,
    width: Option<usize>,
) -> Result<(), StepError> {
    match width {
        Some(width) if width != found => Err(StepError::BadInput(format!(
            "`{}` line {line}: {found} fields, but the header has {width}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record as the `csv` crate reads it (header first), or its error.
    fn by_csv(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(input);
        let mut out = vec![
            reader
                .byte_headers()
                .map_err(|e| e.to_string())?
                .iter()
                .map(<[u8]>::to_vec)
                .collect(),
        ];
        for record in reader.byte_records() {
            out.push(
                record
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(<[u8]>::to_vec)
                    .collect(),
            );
        }
        Ok(out)
    }

    /// The same through [`Records`] with a buffer of `capacity` bytes.
    fn by_records(input: &[u8], capacity: usize) -> Result<Vec<Vec<Vec<u8>>>, String> {
        let path = Path::new("t.csv");
        let mut records = Records::with_capacity(capacity, input);
        let header = records.headers(path).map_err(|e| format!("{e:?}"))?;
        let mut out = vec![header.iter().map(|f| f.as_bytes().to_vec()).collect()];
        while let Some(record) = records.read(path).map_err(|e| format!("{e:?}"))? {
            out.push(
                (0..record.len())
                    .map(|i| record.get(i).unwrap().to_vec())
                    .collect(),
            );
        }
        Ok(out)
    }

    #[test]
    fn reads_what_the_csv_crate_reads_whatever_the_buffer_size() {
        let inputs: &[&[u8]] = &[
            b"a,b\n1,2\n3,4\n",
            b"a,b\n1,2\n3,4",
            b"a,b\r\n1,2\r\n\r\n3,4\r\n",
            b"a,b\n\n\n1,2\n\n",
            b"\xEF\xBB\xBFcarrier,dep_delay\nAA,5\nUA,NA\nAA,-2\n",
            b"a,b\n1,\n,\n,2\n",
            b"a,b\n1,2\n\"x,y\",\"multi\nline\"\n5,6\n",
            b"a,b\n1,2\n3,\"he said \"\"hi\"\"\"\n7,8\n",
            b"a,b\n1,2\rold,mac\r5,6\n",
            b"a,b\n1,2\r",
            b"a,b\n1,2\r\n3,4\r",
            b"a\n1\n2\n",
            b"name,value\nalpha beta gamma delta epsilon,123456789012345\nz,1\n",
            b"a,b\nmid\"quote,2\n",
            b"",
            b"a,b",
        ];
        for input in inputs {
            let expected = by_csv(input).unwrap();
            for capacity in [1, 2, 3, 7, 8, 9, 15, 16, 17, 64, 256 * 1024] {
                assert_eq!(
                    by_records(input, capacity).unwrap(),
                    expected,
                    "input {:?}, capacity {capacity}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn fields_past_the_kept_ones_are_counted_not_kept() {
        let path = Path::new("t.csv");
        for capacity in [8, 9, 256 * 1024] {
            let mut records = Records::with_capacity(capacity, &b"a,b,c\n1,22,333\n4,5\n"[..]);
            assert_eq!(records.headers(path).unwrap().len(), 3);
            records.keep_first(2);
            let record = records.read(path).unwrap().unwrap();
            assert_eq!(record.len(), 3);
            assert_eq!(
                (record.get(0), record.get(1)),
                (Some(&b"1"[..]), Some(&b"22"[..]))
            );
            assert_eq!(record.get(2), None);
            // The short record is still caught.
            let err = records.read(path).err().unwrap();
            assert!(format!("{err:?}").contains("line 3: 2 fields"), "{err:?}");
        }
    }

    #[test]
    fn a_record_of_the_wrong_width_is_bad_input_naming_its_line() {
        for (input, line) in [(&b"a,b\n1,2\n\n3\n"[..], 4), (b"a,b\n\"q\",2\n3,4,5\n", 3)] {
            for capacity in [8, 256 * 1024] {
                let err = by_records(input, capacity).unwrap_err();
                assert!(
                    err.contains(&format!("`t.csv` line {line}: "))
                        && err.contains("but the header has 2"),
                    "{err}"
                );
            }
        }
    }
}
