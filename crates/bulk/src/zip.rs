//! A ZIP archive read front to back from a stream, one entry at a time.
//!
//! The bulk files are large (the domestic JSON archive runs to gigabytes)
//! and arrive over HTTP, so they are never held in memory nor written to
//! disk: each entry's local file header is read from the stream, its data
//! inflated as the caller reads it (`flate2` over `miniz_oxide`), its CRC and
//! size checked at its end, and the central directory at the end of the
//! archive is where reading stops. Memory is the read buffer and the
//! inflate window, whatever the archive's size.
//!
//! What a streaming reader must cope with, and does: sizes in the local
//! header, in a ZIP64 extra field, or only in a data descriptor after the
//! data (bit 3; deflate only, since a stored entry of unknown size has no
//! end); descriptors with or without their signature; entries to skip
//! without inflating them when their compressed size is known.
//!
//! Faults name the archive, the entry and the byte offset: a download that
//! ended early is `truncated`, bytes that cannot be a ZIP (a bad signature,
//! a deflate error, a CRC or size mismatch) are `corrupt`, and a failing
//! connection is reported as such.

use crate::BulkError;
use flate2::Crc;
use std::io::{self, BufRead, BufReader, Read};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
const END_OF_CENTRAL64: u32 = 0x0606_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;
const ZIP64_EXTRA: u16 = 0x0001;

const STORED: u16 = 0;
const DEFLATED: u16 = 8;

/// A [`BulkError`] carried through `io::Error`, so the CSV and JSON readers
/// above an entry (which see only `Read`) pass the precise fault on.
#[derive(Debug)]
pub struct Fault(pub BulkError);

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Fault {}

fn fault(kind: io::ErrorKind, e: BulkError) -> io::Error {
    io::Error::new(kind, Fault(e))
}

/// The [`BulkError`] inside an `io::Error` from an entry's reader, else a
/// description of the I/O failure.
pub fn io_to_bulk(e: io::Error, context: &str) -> BulkError {
    if e.get_ref().is_some_and(|inner| inner.is::<Fault>()) {
        let inner = e.into_inner().expect("checked above");
        return inner.downcast::<Fault>().expect("checked above").0;
    }
    BulkError::Unavailable(format!("{context}: the download failed: {e}"))
}

/// Counts the bytes taken from the network.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// One entry's local header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    pub name: String,
    pub method: u16,
    /// Compressed size, when the local header (or its ZIP64 field) gives it.
    pub compressed: Option<u64>,
    /// Uncompressed size, when known before the data.
    pub size: Option<u64>,
    /// Offset of the local header in the archive.
    pub offset: u64,
    crc: u32,
    descriptor: bool,
    zip64: bool,
}

/// Where the reader stands.
#[derive(Debug)]
enum Position {
    /// Before a local header (or the central directory).
    Between,
    /// Inside an entry's data: the header read, the data not finished.
    In(EntryHeader),
    /// The central directory was reached: no more entries.
    End,
}

/// An archive read as a stream.
pub struct ZipStream<R> {
    archive: String,
    input: BufReader<Counting<R>>,
    position: Position,
    entries: u32,
}

impl<R: Read> ZipStream<R> {
    /// `archive` names the file in every message.
    pub fn new(archive: impl Into<String>, reader: R) -> Self {
        Self {
            archive: archive.into(),
            input: BufReader::with_capacity(256 * 1024, Counting { inner: reader, count: 0 }),
            position: Position::Between,
            entries: 0,
        }
    }

    pub fn archive(&self) -> &str {
        &self.archive
    }

    /// Bytes taken from the underlying reader so far.
    pub fn bytes_read(&self) -> u64 {
        self.input.get_ref().count
    }

    /// Bytes of the archive consumed so far (read minus buffered).
    pub fn offset(&self) -> u64 {
        self.bytes_read() - self.input.buffer().len() as u64
    }

    fn truncated(&self, what: &str) -> BulkError {
        BulkError::Protocol(format!(
            "{}: truncated: the archive ends {what}, at byte {}; the download was cut short or the file is \
             incomplete: run again to download it afresh",
            self.archive,
            self.offset()
        ))
    }

    fn corrupt(&self, what: String) -> BulkError {
        BulkError::Protocol(format!("{}: corrupt at byte {}: {what}", self.archive, self.offset()))
    }

    /// Reads exactly `buf.len()` bytes; the end of the stream is truncation.
    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), BulkError> {
        match self.input.read_exact(buf) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(self.truncated(what)),
            Err(e) => Err(io_to_bulk(e, &self.archive)),
        }
    }

    fn u32_at(&mut self, what: &str) -> Result<u32, BulkError> {
        let mut b = [0; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    /// The next entry's header, or `None` once the central directory is
    /// reached. An entry the caller did not read to its end is skipped
    /// (inflated and checked when its compressed size is unknown).
    pub fn next_entry(&mut self) -> Result<Option<EntryHeader>, BulkError> {
        match std::mem::replace(&mut self.position, Position::Between) {
            Position::End => {
                self.position = Position::End;
                return Ok(None);
            }
            Position::In(h) => {
                self.position = Position::In(h.clone());
                self.skip_entry(&h)?;
            }
            Position::Between => {}
        }
        let at = if self.entries == 0 { "before its first entry" } else { "between two entries" };
        let signature = self.u32_at(at)?;
        match signature {
            LOCAL_HEADER => {}
            CENTRAL_HEADER | END_OF_CENTRAL | END_OF_CENTRAL64 => {
                if self.entries == 0 && signature != CENTRAL_HEADER {
                    // An empty archive is legal but never a bulk file.
                    self.position = Position::End;
                    return Ok(None);
                }
                self.position = Position::End;
                return Ok(None);
            }
            other if self.entries == 0 => {
                return Err(self.corrupt(format!(
                    "not a ZIP archive (it starts with {:02x?}); the service sent something else",
                    other.to_le_bytes()
                )));
            }
            other => {
                return Err(self.corrupt(format!("expected a local file header, found signature {other:#010x}")));
            }
        }
        let offset = self.offset() - 4;
        let mut fixed = [0u8; 26];
        self.exact(&mut fixed, "inside a local file header")?;
        let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
        let flags = u16_at(2);
        let method = u16_at(4);
        let crc = u32_at(10);
        let (mut compressed, mut size) = (u32_at(14) as u64, u32_at(18) as u64);
        let (name_len, extra_len) = (u16_at(22) as usize, u16_at(24) as usize);
        let mut name = vec![0; name_len];
        self.exact(&mut name, "inside a file name")?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let mut extra = vec![0; extra_len];
        self.exact(&mut extra, "inside a header's extra field")?;
        let mut zip64 = false;
        let mut i = 0;
        while i + 4 <= extra.len() {
            let id = u16::from_le_bytes([extra[i], extra[i + 1]]);
            let len = u16::from_le_bytes([extra[i + 2], extra[i + 3]]) as usize;
            let data = extra.get(i + 4..i + 4 + len).unwrap_or(&[]);
            if id == ZIP64_EXTRA {
                zip64 = true;
                // The ZIP64 field holds, in this order, the sizes whose
                // header fields are 0xFFFFFFFF.
                let mut values = data.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
                if size == 0xFFFF_FFFF {
                    size = values.next().ok_or_else(|| self.corrupt(format!("{name}: ZIP64 field without a size")))?;
                }
                if compressed == 0xFFFF_FFFF {
                    compressed = values
                        .next()
                        .ok_or_else(|| self.corrupt(format!("{name}: ZIP64 field without a compressed size")))?;
                }
            }
            i += 4 + len;
        }
        if flags & 1 != 0 {
            return Err(BulkError::Protocol(format!("{}: {name} is encrypted; bulk files never are", self.archive)));
        }
        let descriptor = flags & 8 != 0;
        let (compressed, size) = if descriptor { (None, None) } else { (Some(compressed), Some(size)) };
        match method {
            DEFLATED => {}
            STORED if compressed.is_some() => {}
            STORED => {
                return Err(BulkError::Protocol(format!(
                    "{}: {name} is stored without its size in the header, which cannot be read as a stream",
                    self.archive
                )));
            }
            m => {
                return Err(BulkError::Protocol(format!(
                    "{}: {name} uses compression method {m}; only stored (0) and deflate (8) are supported",
                    self.archive
                )));
            }
        }
        let header = EntryHeader { name, method, compressed, size, offset, crc, descriptor, zip64 };
        self.entries += 1;
        self.position = Position::In(header.clone());
        Ok(Some(header))
    }

    /// Skips the current entry: without inflating when its compressed size
    /// is known, else by inflating and checking it.
    pub fn skip_entry(&mut self, header: &EntryHeader) -> Result<(), BulkError> {
        if !matches!(&self.position, Position::In(h) if h == header) {
            return Ok(());
        }
        match header.compressed {
            Some(n) => {
                let copied = io::copy(&mut (&mut self.input).take(n), &mut io::sink())
                    .map_err(|e| io_to_bulk(e, &self.archive))?;
                if copied < n {
                    return Err(self.truncated(&format!("inside {}", header.name)));
                }
                self.position = Position::Between;
                Ok(())
            }
            None => {
                let mut reader = self.entry(header);
                io::copy(&mut reader, &mut io::sink()).map_err(|e| io_to_bulk(e, &header.name))?;
                Ok(())
            }
        }
    }

    /// The current entry's data, inflated, as the caller reads it. At its
    /// end the size and CRC are checked (and a data descriptor read); a
    /// mismatch or an early end is an error from `read`.
    pub fn entry(&mut self, header: &EntryHeader) -> EntryReader<'_, R> {
        let limit = header.compressed;
        let decoder = match header.method {
            STORED => Decoder::Stored,
            _ => Decoder::Deflate(Box::new(flate2::Decompress::new(false))),
        };
        EntryReader {
            header: header.clone(),
            zip: self,
            limit,
            decoder,
            crc: Crc::new(),
            out: 0,
            consumed: 0,
            done: false,
            failed: false,
        }
    }
}

enum Decoder {
    Stored,
    Deflate(Box<flate2::Decompress>),
}

/// Reads one entry's data; see [`ZipStream::entry`].
pub struct EntryReader<'a, R> {
    zip: &'a mut ZipStream<R>,
    header: EntryHeader,
    /// Compressed bytes left, when known.
    limit: Option<u64>,
    decoder: Decoder,
    crc: Crc,
    out: u64,
    consumed: u64,
    done: bool,
    /// A read failed (the archive is cut short, damaged, or the download broke).
    failed: bool,
}

impl<R: Read> EntryReader<'_, R> {
    /// Whether reading the entry failed at the archive level.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Reads the rest of the entry to its end, checking it: after a record
    /// that cannot be read, this tells a damaged archive (the CRC or the
    /// deflate data says so) from an intact file with a bad record.
    pub fn check_rest(&mut self) -> Result<(), BulkError> {
        if self.failed || self.done {
            return Ok(());
        }
        io::copy(self, &mut io::sink()).map(|_| ()).map_err(|e| io_to_bulk(e, &self.header.name))
    }

    pub fn name(&self) -> &str {
        &self.header.name
    }

    /// Uncompressed bytes produced so far.
    pub fn position(&self) -> u64 {
        self.out
    }

    /// Archive bytes taken from the network so far.
    pub fn bytes_read(&self) -> u64 {
        self.zip.bytes_read()
    }

    fn truncated(&self) -> io::Error {
        let e = self.zip.truncated(&format!("inside {}, {} bytes into its data", self.header.name, self.out));
        fault(io::ErrorKind::UnexpectedEof, e)
    }

    fn corrupt(&self, what: String) -> io::Error {
        fault(io::ErrorKind::InvalidData, self.zip.corrupt(format!("{}: {what}", self.header.name)))
    }

    fn consume(&mut self, n: usize) {
        self.zip.input.consume(n);
        self.consumed += n as u64;
        if let Some(left) = &mut self.limit {
            *left -= n as u64;
        }
    }

    /// Checks the entry once its data has ended.
    fn finish(&mut self) -> io::Result<()> {
        self.done = true;
        if let Some(left) = self.limit.filter(|l| *l > 0) {
            return Err(self.corrupt(format!("the deflate data ended {left} bytes before its stated size")));
        }
        let (mut crc, mut size, mut compressed) = (self.header.crc, self.header.size, self.header.compressed);
        if self.header.descriptor {
            let mut first = [0u8; 4];
            let what = format!("inside the data descriptor of {}", self.header.name);
            self.zip.exact(&mut first, &what).map_err(|e| fault(io::ErrorKind::UnexpectedEof, e))?;
            let mut value = u32::from_le_bytes(first);
            if value == DESCRIPTOR {
                self.zip.exact(&mut first, &what).map_err(|e| fault(io::ErrorKind::UnexpectedEof, e))?;
                value = u32::from_le_bytes(first);
            }
            crc = value;
            let width = if self.header.zip64 { 8 } else { 4 };
            let mut sizes = [0u8; 16];
            self.zip
                .exact(&mut sizes[..2 * width], &what)
                .map_err(|e| fault(io::ErrorKind::UnexpectedEof, e))?;
            let read = |b: &[u8]| b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64);
            compressed = Some(read(&sizes[..width]));
            size = Some(read(&sizes[width..2 * width]));
            // Four-byte descriptor sizes wrap past 4 GiB.
            if width == 4 {
                compressed = compressed.map(|c| c | (self.consumed & !0xFFFF_FFFF));
                size = size.map(|s| s | (self.out & !0xFFFF_FFFF));
            }
        }
        if crc != self.crc.sum() {
            return Err(self.corrupt(format!(
                "CRC-32 {:08x} where the archive says {crc:08x}: the data is damaged",
                self.crc.sum()
            )));
        }
        if size.is_some_and(|s| s != self.out) || compressed.is_some_and(|c| c != self.consumed) {
            return Err(self.corrupt(format!(
                "{} bytes ({} compressed) where the archive says {} ({})",
                self.out,
                self.consumed,
                size.unwrap_or(0),
                compressed.unwrap_or(0)
            )));
        }
        self.zip.position = Position::Between;
        Ok(())
    }
}

impl<R: Read> Read for EntryReader<'_, R> {
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        let r = self.read_inner(dst);
        self.failed |= r.is_err();
        r
    }
}

impl<R: Read> EntryReader<'_, R> {
    fn read_inner(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        if self.done || dst.is_empty() {
            return Ok(0);
        }
        loop {
            let buf = self.zip.input.fill_buf()?;
            let eof = buf.is_empty();
            let input = match self.limit {
                Some(left) => &buf[..buf.len().min(left.min(usize::MAX as u64) as usize)],
                None => buf,
            };
            let (read, used, ended) = match &mut self.decoder {
                Decoder::Stored => {
                    let n = input.len().min(dst.len());
                    dst[..n].copy_from_slice(&input[..n]);
                    (n, n, self.limit == Some(n as u64))
                }
                Decoder::Deflate(d) => {
                    let (in0, out0) = (d.total_in(), d.total_out());
                    let status = d.decompress(input, dst, flate2::FlushDecompress::None);
                    let (used, read) = ((d.total_in() - in0) as usize, (d.total_out() - out0) as usize);
                    match status {
                        Ok(flate2::Status::StreamEnd) => (read, used, true),
                        Ok(_) => (read, used, false),
                        Err(e) => return Err(self.corrupt(format!("deflate data is damaged ({e})"))),
                    }
                }
            };
            self.consume(used);
            self.crc.update(&dst[..read]);
            self.out += read as u64;
            if ended {
                self.finish()?;
                return Ok(read);
            }
            if read > 0 {
                return Ok(read);
            }
            if self.limit == Some(0) {
                // The stated compressed size is spent but deflate wants more.
                return Err(self.corrupt("the deflate data runs past its stated size".into()));
            }
            if eof {
                return Err(self.truncated());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn archive(entries: &[(&str, &[u8])], options: zip::write::SimpleFileOptions, seekable: bool) -> Vec<u8> {
        if seekable {
            let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
            for (name, data) in entries {
                w.start_file(*name, options).unwrap();
                w.write_all(data).unwrap();
            }
            w.finish().unwrap().into_inner()
        } else {
            let mut w = zip::ZipWriter::new_stream(Vec::new());
            for (name, data) in entries {
                w.start_file(*name, options).unwrap();
                w.write_all(data).unwrap();
            }
            w.finish().unwrap().into_inner()
        }
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, BulkError> {
        let mut z = ZipStream::new("t.zip", bytes);
        let mut out = Vec::new();
        while let Some(h) = z.next_entry()? {
            let mut data = Vec::new();
            z.entry(&h).read_to_end(&mut data).map_err(|e| io_to_bulk(e, "t.zip"))?;
            out.push((h.name, data));
        }
        Ok(out)
    }

    fn big() -> Vec<u8> {
        (0..200_000u32).flat_map(|i| format!("row {i},{}\n", i * 7 % 13).into_bytes()).collect()
    }

    fn options() -> Vec<(zip::write::SimpleFileOptions, bool)> {
        use zip::CompressionMethod::{Deflated, Stored};
        use zip::write::SimpleFileOptions as O;
        vec![
            (O::default().compression_method(Deflated).compression_level(Some(1)).large_file(true), true),
            (O::default().compression_method(Deflated), true),
            (O::default().compression_method(Deflated), false),
            (O::default().compression_method(Deflated).large_file(true), false),
            (O::default().compression_method(Stored), true),
        ]
    }

    #[test]
    fn every_layout_reads_back() {
        let data = big();
        for (o, seekable) in options() {
            let bytes = archive(&[("a-2021.csv", &data), ("b.csv", b"x,y\n1,2\n"), ("empty", b"")], o, seekable);
            let got = read_all(&bytes).unwrap_or_else(|e| panic!("{o:?} seekable={seekable}: {e}"));
            assert_eq!(got.len(), 3);
            assert_eq!(got[0], ("a-2021.csv".to_string(), data.clone()));
            assert_eq!(got[1].1, b"x,y\n1,2\n");
            assert!(got[2].1.is_empty());
        }
    }

    #[test]
    fn unread_entries_are_skipped() {
        let data = big();
        for (o, seekable) in options() {
            let bytes = archive(&[("skip", &data), ("keep", b"kept")], o, seekable);
            let mut z = ZipStream::new("t.zip", &bytes[..]);
            let first = z.next_entry().unwrap().unwrap();
            assert_eq!(first.name, "skip");
            let second = z.next_entry().unwrap().unwrap();
            let mut s = String::new();
            z.entry(&second).read_to_string(&mut s).unwrap();
            assert_eq!(s, "kept");
            assert!(z.next_entry().unwrap().is_none());
            assert!(z.next_entry().unwrap().is_none());
        }
    }

    #[test]
    fn truncation_anywhere_is_named_as_such() {
        let data = big();
        for (o, seekable) in options() {
            let bytes = archive(&[("a-2021.csv", &data), ("b.csv", b"x\n")], o, seekable);
            // Cut inside the first entry's data, inside the second header,
            // and right after the last entry (before the central directory).
            for cut in [100, bytes.len() / 3, bytes.len() / 2] {
                let err = read_all(&bytes[..cut]).unwrap_err();
                let msg = err.to_string();
                assert!(msg.contains("t.zip: truncated"), "{o:?} {seekable} cut {cut}: {msg}");
            }
        }
    }

    #[test]
    fn corruption_is_named_with_the_entry() {
        let data = big();
        for (o, seekable) in options() {
            let mut bytes = archive(&[("a-2021.csv", &data)], o, seekable);
            let mid = bytes.len() / 2;
            for b in &mut bytes[mid..mid + 64] {
                *b ^= 0x5a;
            }
            let msg = read_all(&bytes).unwrap_err().to_string();
            assert!(msg.contains("t.zip: corrupt") && msg.contains("a-2021.csv"), "{o:?} {seekable}: {msg}");
        }
        let msg = read_all(b"<html>not a zip</html>").unwrap_err().to_string();
        assert!(msg.contains("not a ZIP archive"), "{msg}");
    }

    #[test]
    fn a_failing_connection_is_not_called_corruption() {
        struct Broken<'a>(&'a [u8]);
        impl Read for Broken<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer"));
                }
                let n = self.0.len().min(buf.len()).min(1000);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let bytes = archive(&[("a", &big())], options()[0].0, true);
        let mut z = ZipStream::new("t.zip", Broken(&bytes[..bytes.len() / 2]));
        let h = z.next_entry().unwrap().unwrap();
        let e = io::copy(&mut z.entry(&h), &mut io::sink()).unwrap_err();
        let e = io_to_bulk(e, "t.zip");
        assert!(matches!(&e, BulkError::Unavailable(m) if m.contains("connection reset")), "{e:?}");
    }
}
