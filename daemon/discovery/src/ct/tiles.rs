//! The tiled layout of c2sp.org/tlog-tiles as the static CT API uses it
//! (c2sp.org/static-ct-api): tile paths (`tile/<L>/<N>`, `tile/data/<N>`,
//! partial tiles `.p/<W>`, N in groups of three digits with `x`
//! prefixes), hash tiles (up to 256 hashes of level `8·L` nodes), data
//! tiles (up to 256 `TileLeaf`s), and gzip bodies (RFC 1952; the deflate
//! stream inflated with miniz_oxide, under a size cap).

use super::entry::Reader;
use super::merkle::Hash;

/// Entries (or hashes) in a full tile.
pub const TILE_WIDTH: u64 = 256;

/// The path of a tile under the monitoring prefix: `level` is `None` for
/// a data tile; `width` below 256 names a partial tile.
pub fn tile_path(level: Option<u8>, index: u64, width: u64) -> String {
    let mut path = match level {
        Some(l) => format!("tile/{l}/"),
        None => "tile/data/".to_owned(),
    };
    let digits = index.to_string();
    let pad = (3 - digits.len() % 3) % 3;
    let padded = format!("{}{digits}", "0".repeat(pad));
    let groups: Vec<&str> = padded
        .as_bytes()
        .chunks(3)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    for (i, group) in groups.iter().enumerate() {
        if i + 1 < groups.len() {
            path.push('x');
            path.push_str(group);
            path.push('/');
        } else {
            path.push_str(group);
        }
    }
    if width < TILE_WIDTH {
        path.push_str(&format!(".p/{width}"));
    }
    path
}

/// Splits a hash tile body into its hashes; it must hold `width` of them.
pub fn parse_hash_tile(body: &[u8], width: u64) -> Result<Vec<Hash>, String> {
    if body.len() as u64 != width * 32 {
        return Err(format!(
            "a hash tile of width {width} has {} bytes",
            body.len()
        ));
    }
    Ok(body
        .chunks_exact(32)
        .filter_map(|c| <[u8; 32]>::try_from(c).ok())
        .collect())
}

/// One `TileLeaf` of a data tile, borrowed from the tile's body.
#[derive(Debug, Clone, Copy)]
pub struct TileLeaf<'a> {
    /// The `TimestampedEntry`, hashed into the tree as the leaf
    /// `0x00 0x00 || timestamped_entry` (a v1 `MerkleTreeLeaf`).
    pub timestamped_entry: &'a [u8],
    /// The `pre_certificate` of a precertificate entry.
    pub precertificate: Option<&'a [u8]>,
    /// SHA-256 fingerprints of the chain, 32 bytes each, leaf's issuer
    /// first.
    pub chain: &'a [u8],
}

/// Splits a data tile body into its leaves; it must hold `width` of them.
pub fn parse_data_tile(body: &[u8], width: u64) -> Result<Vec<TileLeaf<'_>>, String> {
    let mut reader = Reader::new(body);
    let mut leaves = Vec::with_capacity(width as usize);
    while !reader.is_empty() {
        let start = reader.offset();
        reader.skip(8)?; // timestamp
        let entry_type = reader.u16()?;
        match entry_type {
            0 => {
                reader.vec24()?;
            }
            1 => {
                reader.skip(32)?;
                reader.vec24()?;
            }
            other => return Err(format!("unknown entry type {other}")),
        }
        reader.vec16()?; // extensions
        let timestamped_entry = &body[start..reader.offset()];
        let precertificate = if entry_type == 1 {
            Some(reader.vec24()?)
        } else {
            None
        };
        let chain = reader.vec16()?;
        if chain.len() % 32 != 0 {
            return Err("a chain fingerprint list is not a multiple of 32 bytes".to_owned());
        }
        leaves.push(TileLeaf {
            timestamped_entry,
            precertificate,
            chain,
        });
    }
    if leaves.len() as u64 != width {
        return Err(format!(
            "a data tile of width {width} has {} entries",
            leaves.len()
        ));
    }
    Ok(leaves)
}

/// The body, inflated if it is gzip (by its magic bytes: some logs serve
/// tiles gzip-compressed without saying so), at most `max` bytes.
pub fn maybe_gunzip(body: Vec<u8>, max: usize) -> Result<Vec<u8>, String> {
    if body.starts_with(&[0x1f, 0x8b]) {
        gunzip(&body, max).map_err(str::to_owned)
    } else {
        Ok(body)
    }
}

/// Inflates a gzip member (RFC 1952 §2.3) to at most `max` bytes.
pub fn gunzip(data: &[u8], max: usize) -> Result<Vec<u8>, &'static str> {
    let mut reader = Reader::new(data);
    let header = reader.take(10).map_err(|_| "gzip header too short")?;
    if header[0] != 0x1f || header[1] != 0x8b || header[2] != 8 {
        return Err("not a gzip body");
    }
    let flags = header[3];
    if flags & 0x04 != 0 {
        let len = reader.u16().map_err(|_| "bad gzip extra field")?;
        reader
            .skip(usize::from(len.swap_bytes()))
            .map_err(|_| "bad gzip extra field")?;
    }
    for flag in [0x08, 0x10] {
        if flags & flag != 0 {
            // A zero-terminated name or comment.
            let rest = reader.rest();
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or("bad gzip name or comment")?;
            reader.skip(end + 1).map_err(|_| "bad gzip header")?;
        }
    }
    if flags & 0x02 != 0 {
        reader.skip(2).map_err(|_| "bad gzip header CRC")?;
    }
    let deflated = reader.rest();
    miniz_oxide::inflate::decompress_to_vec_with_limit(deflated, max).map_err(|e| {
        if matches!(e.status, miniz_oxide::inflate::TINFLStatus::HasMoreOutput) {
            "the gzip body inflates beyond the size cap"
        } else {
            "the gzip body does not inflate"
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths() {
        assert_eq!(tile_path(Some(0), 0, 256), "tile/0/000");
        assert_eq!(tile_path(None, 67, 256), "tile/data/067");
        assert_eq!(tile_path(Some(1), 1234067, 256), "tile/1/x001/x234/067");
        assert_eq!(tile_path(None, 1000, 3), "tile/data/x001/000.p/3");
    }

    #[test]
    fn gzip_bodies() {
        let data = b"hello tiles hello tiles hello tiles".repeat(100);
        let deflated = miniz_oxide::deflate::compress_to_vec(&data, 6);
        let mut gz = vec![0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 0, 255];
        gz.extend_from_slice(b"name\0");
        gz.extend_from_slice(&deflated);
        gz.extend_from_slice(&[0; 8]);
        assert_eq!(maybe_gunzip(gz.clone(), 1 << 20).unwrap(), data);
        assert!(gunzip(&gz, 100).is_err());
        assert_eq!(maybe_gunzip(b"plain".to_vec(), 10).unwrap(), b"plain");
        assert!(gunzip(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3], 100).is_err());
    }
}
