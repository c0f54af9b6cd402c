//! Gzip for request bodies, with one deflate state per thread reused from call to call.
//!
//! Snowflake's drivers send every POST body gzip-compressed (snowflake-connector-python
//! `network.py`: `Content-Encoding: gzip` on any non-empty body), and so do we. A fresh
//! deflate state is not free: miniz allocates and zeroes about 300 KiB of hash tables for
//! it, which is more than a whole statement's own work costs the CPU when the body is a few
//! hundred bytes. So a small body (most statements) goes in one *stored* deflate block (RFC
//! 1951 §3.2.4: no compression, no state), and a larger one through a state each thread keeps
//! and resets. Either way the output is the standard gzip member (RFC 1952): a 10-byte header,
//! the deflate stream, CRC-32 and length.

use std::cell::RefCell;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use crate::error::{Error, Result};

thread_local! {
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
}

/// RFC 1952 header: magic, CM = deflate, no flags, no mtime, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Bodies up to this size are stored, not compressed: compressing them saves less than a
/// TCP segment and costs more CPU than the statement's whole round trip.
const STORE_UP_TO: usize = 2048;

/// `bytes` as one gzip member.
pub(crate) fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.len() <= STORE_UP_TO {
        // One final stored block: BFINAL = 1 and BTYPE = 00 in the first byte (the rest of it
        // is padding), then LEN and its one's complement, then the bytes as they are.
        let len = bytes.len() as u16;
        let mut out = Vec::with_capacity(HEADER.len() + 5 + bytes.len() + 8);
        out.extend_from_slice(&HEADER);
        out.push(0x01);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(bytes);
        return Ok(trailer(out, bytes));
    }
    let mut out = Vec::with_capacity(HEADER.len() + bytes.len() / 2 + 64);
    out.extend_from_slice(&HEADER);
    DEFLATE.with(|state| {
        let mut deflate = state.borrow_mut();
        deflate.reset();
        loop {
            let consumed = deflate.total_in() as usize;
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(256));
            }
            match deflate.compress_vec(&bytes[consumed..], &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return Ok(()),
                Ok(Status::Ok | Status::BufError) => {}
                Err(e) => return Err(Error::protocol(format!("cannot compress the request: {e}"))),
            }
        }
    })?;
    Ok(trailer(out, bytes))
}

/// `out` with the gzip trailer of `bytes` appended: CRC-32, then the length modulo 2^32.
fn trailer(mut out: Vec<u8>, bytes: &[u8]) -> Vec<u8> {
    let mut crc = Crc::new();
    crc.update(bytes);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::gzip;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    #[test]
    fn round_trips_small_empty_and_large_bodies_on_a_reused_state() {
        let large: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i * 7919).to_le_bytes())
            .collect();
        for body in [
            &b"{\"sqlText\":\"SELECT 1\"}"[..],
            b"",
            &large,
            b"again, after a large one",
            &vec![b'x'; super::STORE_UP_TO],
            &vec![b'y'; super::STORE_UP_TO + 1],
        ] {
            assert_eq!(gunzip(&gzip(body).unwrap()), body);
        }
    }

    #[test]
    fn a_reused_state_gives_the_same_bytes_as_a_fresh_one() {
        let body = vec![b'z'; 10_000];
        let first = gzip(&body).unwrap();
        assert!(
            first.len() < 200,
            "a large body is compressed: {}",
            first.len()
        );
        let other: Vec<u8> = (0..5_000u32).flat_map(|i| i.to_le_bytes()).collect();
        gzip(&other).unwrap();
        assert_eq!(gzip(&body).unwrap(), first);
    }
}
