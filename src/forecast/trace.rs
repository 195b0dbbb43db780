//! Access traces (DESIGN.md): CSV with the header `ts_ms,object_id,size_bytes` and an
//! optional fourth column `op` (`read`|`write`), one access per line, `ts_ms`
//! non-decreasing. Read into hourly access counts per object.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use super::features::ObjectFacts;

/// Length of an hour in ms.
const HOUR_MS: i64 = 3_600_000;

/// 3000-01-01T00:00:00Z: later times are taken for another unit, not replayed.
const LATEST_MS: i64 = 32_503_680_000_000;

/// The longest gap between two lines of a trace: the replay steps through every
/// forecaster interval of it, and a stray time is likelier than a quiet year.
const LONGEST_GAP_MS: i64 = 366 * 24 * HOUR_MS;

/// The largest object S3 stores (5 TiB): a larger size is taken for a stray figure, and
/// the byte totals of a replay stay far from overflowing.
const LARGEST_OBJECT_BYTES: u64 = 5 << 40;

/// A trace that cannot be used; line numbers count from 1 (the header).
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Reading failed.
    #[error("reading the trace: {0}")]
    Io(#[from] std::io::Error),
    /// The first line is not the expected header.
    #[error("line 1: expected the header ts_ms,object_id,size_bytes[,op], found {0:?}")]
    Header(String),
    /// A row that does not parse.
    #[error("line {line}: {why}")]
    Row {
        /// Line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The trace has no accesses.
    #[error("the trace holds no accesses")]
    Empty,
}

/// Hourly access counts per object over one span of hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyCounts {
    /// The first hour (hours since the epoch).
    pub first_hour: i64,
    /// Per object, its counts.
    pub series: BTreeMap<String, ObjectSeries>,
}

/// One object's hourly counts in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSeries {
    /// Created at its first access, with the size of its last.
    pub object: ObjectFacts,
    /// One count per hour from [`HourlyCounts::first_hour`]; every object's series has
    /// the same length.
    pub hours: Vec<u32>,
}

/// One access of a trace, borrowing the object id from the reader's line buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access<'a> {
    /// When, epoch ms.
    pub ts_ms: i64,
    /// The object.
    pub object_id: &'a str,
    /// The object's size.
    pub size_bytes: u64,
    /// A write (`op` = `write`) rather than a read.
    pub write: bool,
}

/// Reads a trace one line at a time, checking each row as it goes: memory does not grow
/// with the length of the trace.
#[derive(Debug)]
pub struct TraceReader<R> {
    input: R,
    line: String,
    line_no: usize,
    bytes_read: u64,
    previous: Option<i64>,
}

impl<R: BufRead> TraceReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<TraceReader<R>, TraceError> {
        let mut header = String::new();
        let header_len = read_line(&mut input, &mut header, 1)?;
        // Spreadsheets write a byte-order mark, and some tools upper-case the names.
        let columns: Vec<String> = header
            .trim_start_matches('\u{feff}')
            .trim()
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        if !(columns.starts_with(&["ts_ms", "object_id", "size_bytes"].map(String::from))
            && (columns.len() == 3 || columns.get(3).is_some_and(|c| c == "op")))
        {
            return Err(TraceError::Header(header.trim_end().to_string()));
        }
        Ok(TraceReader {
            input,
            line: String::new(),
            line_no: 1,
            bytes_read: header_len as u64,
            previous: None,
        })
    }

    /// Number of the line last read (the header is line 1).
    pub fn line_no(&self) -> usize {
        self.line_no
    }

    /// Bytes of the input read so far, for progress through a file of known size.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next access; `None` at the end of the trace. Blank lines are skipped.
    pub fn next_access(&mut self) -> Result<Option<Access<'_>>, TraceError> {
        loop {
            self.line.clear();
            let len = read_line(&mut self.input, &mut self.line, self.line_no + 1)?;
            if len == 0 {
                return Ok(None);
            }
            self.bytes_read += len as u64;
            self.line_no += 1;
            if !self.line.trim().is_empty() {
                break;
            }
        }
        let (line_no, previous) = (self.line_no, self.previous);
        let row = |why: String| TraceError::Row { line: line_no, why };
        let mut fields = self.line.trim().split(',').map(str::trim);
        let mut field = || fields.next();
        let (Some(ts), Some(object_id), Some(size), op, None) =
            (field(), field(), field(), field(), field())
        else {
            let found = self.line.trim().split(',').count();
            return Err(row(format!("expected 3 or 4 fields, found {found}")));
        };
        let ts_ms: i64 = ts
            .parse()
            .map_err(|_| row(format!("ts_ms {ts:?} is not an integer")))?;
        if !(0..LATEST_MS).contains(&ts_ms) {
            return Err(row(format!(
                "ts_ms {ts_ms} is not a time between 1970 and 3000 in milliseconds since the epoch (seconds or microseconds?)"
            )));
        }
        if let Some(previous) = previous {
            if ts_ms < previous {
                return Err(row(format!(
                    "ts_ms {ts_ms} is before the previous line's {previous}; the trace must be in time order"
                )));
            }
            if ts_ms - previous > LONGEST_GAP_MS {
                return Err(row(format!(
                    "ts_ms {ts_ms} is more than a year after the previous line's {previous}; a stray time?"
                )));
            }
        }
        if object_id.is_empty() {
            return Err(row("object_id is empty".into()));
        }
        let size_bytes = size
            .parse::<u64>()
            .map_err(|_| row(format!("size_bytes {size:?} is not a size")))?;
        if size_bytes > LARGEST_OBJECT_BYTES {
            return Err(row(format!(
                "size_bytes {size_bytes} is more than 5 TiB, the largest object S3 stores"
            )));
        }
        let write = match op {
            None => false,
            Some(op) if op.eq_ignore_ascii_case("read") => false,
            Some(op) if op.eq_ignore_ascii_case("write") => true,
            Some(op) => return Err(row(format!("op {op:?} is neither read nor write"))),
        };
        self.previous = Some(ts_ms);
        Ok(Some(Access {
            ts_ms,
            object_id,
            size_bytes,
            write,
        }))
    }
}

/// Reads line `line_no` of `input` into `line`, with its length; text that is not UTF-8
/// (a compressed file, another encoding) is an error of that line.
fn read_line(
    input: &mut impl BufRead,
    line: &mut String,
    line_no: usize,
) -> Result<usize, TraceError> {
    input.read_line(line).map_err(|error| match error.kind() {
        std::io::ErrorKind::InvalidData => TraceError::Row {
            line: line_no,
            why: "not UTF-8 text (a compressed file?)".into(),
        },
        _ => TraceError::Io(error),
    })
}

/// Reads a whole trace into hourly counts; see [`hourly_counts`].
pub fn read_trace(input: impl BufRead) -> Result<HourlyCounts, TraceError> {
    hourly_counts(&mut TraceReader::new(input)?, i64::MAX)
}

/// Counts the accesses before `until_ms` per object and hour, stopping at the first
/// access at or after it. Writes count as accesses too: both are demand on the tier
/// that holds the object.
pub fn hourly_counts<R: BufRead>(
    reader: &mut TraceReader<R>,
    until_ms: i64,
) -> Result<HourlyCounts, TraceError> {
    let mut counts: HashMap<String, (ObjectFacts, HashMap<i64, u32>)> = HashMap::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    while let Some(access) = reader.next_access()? {
        if access.ts_ms >= until_ms {
            break;
        }
        let hour = access.ts_ms.div_euclid(HOUR_MS);
        first = first.min(hour);
        last = last.max(hour);
        let (object, by_hour) = counts
            .entry(access.object_id.to_string())
            .or_insert_with(|| {
                let created_ms = access.ts_ms;
                (
                    ObjectFacts {
                        created_ms,
                        ..ObjectFacts::default()
                    },
                    HashMap::new(),
                )
            });
        object.size_bytes = access.size_bytes;
        *by_hour.entry(hour).or_default() += 1;
    }
    if counts.is_empty() {
        return Err(TraceError::Empty);
    }
    let span = (last - first + 1) as usize;
    let series = counts
        .into_iter()
        .map(|(id, (object, by_hour))| {
            let mut hours = vec![0u32; span];
            for (hour, n) in by_hour {
                hours[(hour - first) as usize] = n;
            }
            (id, ObjectSeries { object, hours })
        })
        .collect();
    Ok(HourlyCounts {
        first_hour: first,
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_counted_per_object_and_hour() {
        let trace = "ts_ms,object_id,size_bytes,op\n\
                     3600000,a,10,read\n3600001,a,12,write\n3600002,b,5,read\n\n10800000,a,12,read\n";
        let counts = read_trace(trace.as_bytes()).unwrap();
        assert_eq!(counts.first_hour, 1);
        assert_eq!(counts.series["a"].hours, [2, 0, 1]);
        assert_eq!(counts.series["b"].hours, [1, 0, 0]);
        let a = counts.series["a"].object;
        assert_eq!(
            (a.created_ms, a.size_bytes),
            (3_600_000, 12),
            "first seen, last size"
        );
        assert_eq!(counts.series["b"].object.created_ms, 3_600_002);
        let three_columns = read_trace("ts_ms,object_id,size_bytes\n0,x,1\n".as_bytes()).unwrap();
        assert_eq!(three_columns.series["x"].hours, [1]);
        // A byte-order mark, upper-case names and ops, Windows line ends.
        let spreadsheet = "\u{feff}TS_MS,Object_Id,SIZE_BYTES,Op\r\n0,x,1,READ\r\n1,x,1,Write\r\n";
        assert_eq!(
            read_trace(spreadsheet.as_bytes()).unwrap().series["x"].hours,
            [2]
        );
    }

    #[test]
    fn bad_traces_name_the_line_and_the_problem() {
        let line_of_bytes = |trace: &[u8]| match read_trace(trace) {
            Err(TraceError::Row { line, .. }) => line,
            other => panic!("{trace:?}: {other:?}"),
        };
        let line_of = |trace: &str| line_of_bytes(trace.as_bytes());
        let h = "ts_ms,object_id,size_bytes\n";
        assert_eq!(line_of(&format!("{h}5,a,1\n4,a,1\n")), 3, "decreasing time");
        assert_eq!(line_of(&format!("{h}x,a,1\n")), 2);
        assert_eq!(line_of(&format!("{h}1,a\n")), 2);
        assert_eq!(line_of(&format!("{h}1,,1\n")), 2);
        assert_eq!(line_of(&format!("{h}1,a,-1\n")), 2);
        assert_eq!(line_of("ts_ms,object_id,size_bytes,op\n1,a,1,delete\n"), 2);
        assert_eq!(
            line_of(&format!("{h}1,a,{}\n", u64::MAX)),
            2,
            "no such size"
        );
        assert!(read_trace(format!("{h}1,a,{}\n", 5u64 << 40).as_bytes()).is_ok());
        let not_text = [h.as_bytes(), b"1,a,1\n2,\xff,1\n"].concat();
        assert_eq!(line_of_bytes(&not_text), 3, "not UTF-8");
        assert_eq!(line_of_bytes(b"\x1f\x8b\x08\x00\xff\n"), 1, "gzip");
        // Times the replay could not step through: before 1970, in microseconds, or a
        // stray line years after the rest (each would have run for hours or aborted).
        assert_eq!(line_of(&format!("{h}-1,a,1\n")), 2, "before 1970");
        assert_eq!(
            line_of(&format!("{h}1789948800000000,a,1\n")),
            2,
            "microseconds"
        );
        assert_eq!(line_of(&format!("{h}{},a,1\n", i64::MAX)), 2);
        let year = 366 * 24 * HOUR_MS;
        assert_eq!(
            line_of(&format!("{h}0,a,1\n{},a,1\n", year + 1)),
            3,
            "a stray time"
        );
        assert!(read_trace(format!("{h}0,a,1\n{year},a,1\n").as_bytes()).is_ok());
        assert!(matches!(
            read_trace("id,ts\n".as_bytes()),
            Err(TraceError::Header(_))
        ));
        assert!(matches!(
            read_trace("".as_bytes()),
            Err(TraceError::Header(_))
        ));
        assert!(matches!(read_trace(h.as_bytes()), Err(TraceError::Empty)));
    }
}
