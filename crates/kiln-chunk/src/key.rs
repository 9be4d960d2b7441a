//! Where a chunk is in the object store: `chunks/<id[0..2]>/<id>.tar.zst`, and back.
//!
//! A persisted format: every store written so far holds its bundles under these keys.

use kiln_core::ids::ChunkId;
use object_store::path::Path;

/// The prefix (first path segment) under which every chunk object lives.
pub const PREFIX: &str = "chunks";

/// The suffix of every chunk object's name.
const SUFFIX: &str = ".tar.zst";

/// The object key of a chunk's bundle: `chunks/<id[0..2]>/<id>.tar.zst`.
pub fn object_key(id: &ChunkId) -> Path {
    Path::from(key_string(id))
}

/// The object key as a string (also the bundle's path below a local store's root).
pub fn key_string(id: &ChunkId) -> String {
    let hex = id.to_hex();
    format!("{PREFIX}/{}/{hex}{SUFFIX}", &hex[..2])
}

/// The inverse of [`object_key`]: the id of a well-formed chunk key, else `None` (another
/// object, or a key whose directory does not match its id).
pub fn chunk_id(key: &str) -> Option<ChunkId> {
    let (dir, name) = key
        .strip_prefix(PREFIX)?
        .strip_prefix('/')?
        .split_once('/')?;
    let id: ChunkId = name.strip_suffix(SUFFIX)?.parse().ok()?;
    (id.to_hex()[..2] == *dir).then_some(id)
}

/// The prefix to list every chunk object under.
pub fn prefix() -> Path {
    Path::from(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_round_trip() {
        let id = ChunkId([0xab; 32]);
        let hex = id.to_hex();
        assert_eq!(object_key(&id).as_ref(), format!("chunks/ab/{hex}.tar.zst"));
        assert_eq!(key_string(&id), object_key(&id).as_ref());
        assert_eq!(chunk_id(object_key(&id).as_ref()), Some(id));
        assert_eq!(chunk_id(&format!("chunks/cd/{hex}.tar.zst")), None);
        assert_eq!(chunk_id(&format!("chunksx/ab/{hex}.tar.zst")), None);
        assert_eq!(chunk_id(&format!("chunks/ab/{hex}.tar")), None);
        assert_eq!(chunk_id("chunks/ab/readme.txt"), None);
        assert_eq!(chunk_id("other/x"), None);
        assert!(object_key(&id).prefix_matches(&prefix()));
    }
}
