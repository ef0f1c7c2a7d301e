//! Positional reads of a local file into fresh memory.

use std::fs::File;
use std::io;

/// Reads up to `want` bytes at `pos` with `pread` (short only at the end of
/// the file), into fresh memory that is not zeroed first: `pread` fills it,
/// and only what it filled is kept.
pub fn read_fresh(file: &File, pos: u64, want: usize) -> io::Result<Vec<u8>> {
    use rustix::buffer::spare_capacity;
    // `pread` reads into all the spare capacity, which may exceed `want`.
    let mut buf = Vec::with_capacity(want);
    while buf.len() < want {
        let at = pos + buf.len() as u64;
        match rustix::io::pread(file, spare_capacity(&mut buf), at) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(want);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_what_is_asked_and_stops_at_the_end() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap();
        assert_eq!(read_fresh(&file, 2, 3).unwrap(), b"234");
        assert_eq!(read_fresh(&file, 7, 100).unwrap(), b"789");
        assert_eq!(read_fresh(&file, 10, 4).unwrap(), b"");
        assert_eq!(read_fresh(&file, 0, 0).unwrap(), b"");
    }
}
