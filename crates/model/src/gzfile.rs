//! Files read as they are or gzip'd, told apart by their first two bytes (so a rotated
//! `postgresql.log.2.gz` and a misnamed one both work): logs and enrichment data alike.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Opens `path` for reading, decompressed if it is gzip.
pub fn open(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    let mut f = File::open(path)?;
    let mut magic = [0u8; 2];
    let n = read_fully(&mut f, &mut magic)?;
    f.seek(SeekFrom::Start(0))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(
            f,
        ))))
    } else {
        Ok(Box::new(f))
    }
}

/// Fills `buf` as far as the input goes. An error after some bytes (a truncated .gz) gives
/// those bytes: the whole read will report the error with its place.
pub fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if n > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
