//! An object's BLAKE3 checksum put together from its parts, hashed apart.
//!
//! BLAKE3 hashes a tree of 1 KiB chunks, and any aligned, power-of-two run of chunks is
//! a subtree whose chaining value depends only on its bytes and where it starts. A part
//! hashed at the offset it will have in the object ([`TreeHasher`]) therefore yields the
//! chaining values of its blocks ([`PartTree`]), and [`object_checksum`] merges the
//! blocks of all the parts into the object's root hash, so a multipart upload needs no
//! second pass over its bytes. Blocks are at most [`MAX_BLOCK`] long and aligned to their
//! size, which holds wherever a part starts on a chunk boundary.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};
use blake3::{CHUNK_LEN, Hasher};

/// Longest block hashed as one subtree: 1 MiB, 32 bytes of chaining value per MiB.
const MAX_BLOCK: u64 = 1024 * CHUNK_LEN as u64;

/// Length of the block that starts at `pos`: the largest power of two that divides it
/// (a subtree cannot reach past its aligned size), at most [`MAX_BLOCK`].
fn block_len(pos: u64) -> u64 {
    if pos == 0 {
        MAX_BLOCK
    } else {
        (1u64 << pos.trailing_zeros()).min(MAX_BLOCK)
    }
}

/// The chaining values of a part's blocks, hashed as if it began at `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartTree {
    /// Where in the object the part was assumed to begin.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// One chaining value per block, in order.
    cvs: Vec<ChainingValue>,
}

impl PartTree {
    /// The chaining values as hex, 64 digits each, to store beside the part.
    pub fn cvs_hex(&self) -> String {
        self.cvs
            .iter()
            .map(|cv| blake3::Hash::from(*cv).to_hex().to_string())
            .collect()
    }

    /// A tree read back from [`PartTree::cvs_hex`]; `None` when the text is not one.
    pub fn from_hex(offset: u64, len: u64, hex: &str) -> Option<PartTree> {
        if !hex.len().is_multiple_of(64) || !hex.is_ascii() {
            return None;
        }
        let cvs = (0..hex.len() / 64)
            .map(|i| {
                blake3::Hash::from_hex(&hex[i * 64..(i + 1) * 64])
                    .ok()
                    .map(|h| *h.as_bytes())
            })
            .collect::<Option<Vec<_>>>()?;
        let tree = PartTree { offset, len, cvs };
        (tree.blocks().count() == tree.cvs.len()).then_some(tree)
    }

    /// A checksum of the part as hashed (its blocks and where they were assumed to be),
    /// `blake3:<hex>`: the same bytes at the same offset give the same one.
    pub fn checksum(&self) -> String {
        let mut hasher = Hasher::new();
        hasher.update(&self.offset.to_le_bytes());
        hasher.update(&self.len.to_le_bytes());
        for cv in &self.cvs {
            hasher.update(cv);
        }
        format!("blake3:{}", hasher.finalize().to_hex())
    }

    /// `(start, len)` of each block, in order.
    fn blocks(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let end = self.offset + self.len;
        let mut pos = self.offset;
        std::iter::from_fn(move || {
            (pos < end).then(|| {
                let len = block_len(pos).min(end - pos);
                let block = (pos, len);
                pos += len;
                block
            })
        })
    }

    /// Whether another part can follow this one in the object: a short last block is a
    /// subtree only at the object's end, unless it is a power-of-two run of whole chunks.
    fn can_be_followed(&self) -> bool {
        self.blocks().last().is_none_or(|(_, len)| {
            len.is_multiple_of(CHUNK_LEN as u64) && (len / CHUNK_LEN as u64).is_power_of_two()
        })
    }
}

/// Hashes a part's bytes, as they stream, into its [`PartTree`].
pub struct TreeHasher {
    offset: u64,
    pos: u64,
    block_start: u64,
    block_end: u64,
    hasher: Hasher,
    cvs: Vec<ChainingValue>,
}

impl TreeHasher {
    /// A hasher for a part that begins `offset` bytes into the object; `None` unless that
    /// is a chunk boundary.
    pub fn at(offset: u64) -> Option<TreeHasher> {
        offset.is_multiple_of(CHUNK_LEN as u64).then(|| TreeHasher {
            offset,
            pos: offset,
            block_start: offset,
            block_end: offset + block_len(offset),
            hasher: block_hasher(offset),
            cvs: Vec::new(),
        })
    }

    /// Adds the part's next bytes.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = usize::try_from(self.block_end - self.pos)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            self.hasher.update(&bytes[..take]);
            self.pos += take as u64;
            bytes = &bytes[take..];
            if self.pos == self.block_end {
                self.cvs.push(self.hasher.finalize_non_root());
                self.block_start = self.pos;
                self.block_end = self.pos + block_len(self.pos);
                self.hasher = block_hasher(self.pos);
            }
        }
    }

    /// The tree of everything added.
    pub fn finish(mut self) -> PartTree {
        if self.pos > self.block_start {
            self.cvs.push(self.hasher.finalize_non_root());
        }
        PartTree {
            offset: self.offset,
            len: self.pos - self.offset,
            cvs: self.cvs,
        }
    }
}

fn block_hasher(pos: u64) -> Hasher {
    let mut hasher = Hasher::new();
    hasher.set_input_offset(pos);
    hasher
}

/// The object's checksum (`blake3:<hex>`, as [`super::ContentHasher`] gives) from the
/// trees of its parts in order; `None` when they do not fit together: a part hashed
/// at another offset than it has, one that no part can follow and is not the last, or
/// a single block, whose root only a hash of the bytes gives.
pub fn object_checksum(parts: &[PartTree]) -> Option<String> {
    let mut offset = 0;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if part.offset != offset || (!last && !part.can_be_followed()) {
            return None;
        }
        offset += part.len;
    }
    let mut stack: Vec<ChainingValue> = Vec::new();
    for part in parts {
        for ((start, _), cv) in part.blocks().zip(&part.cvs) {
            // The stack holds one subtree per bit set in the chunks before `start`.
            let chunks = start / CHUNK_LEN as u64;
            while stack.len() > chunks.count_ones() as usize {
                let right = stack.pop()?;
                let left = stack.pop()?;
                stack.push(merge_subtrees_non_root(&left, &right, Mode::Hash));
            }
            stack.push(*cv);
        }
    }
    if stack.len() < 2 {
        return None;
    }
    let mut right = stack.pop()?;
    while stack.len() > 1 {
        let left = stack.pop()?;
        right = merge_subtrees_non_root(&left, &right, Mode::Hash);
    }
    let root = merge_subtrees_root(&stack.pop()?, &right, Mode::Hash);
    Some(format!("blake3:{}", root.to_hex()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| ((i as u64 * 2_654_435_761) >> 13) as u8 ^ seed)
            .collect()
    }

    /// Hashes `data` cut at `cuts`, each part fed in uneven pieces.
    fn trees(data: &[u8], cuts: &[usize]) -> Vec<PartTree> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(data.len());
        bounds
            .windows(2)
            .map(|w| {
                let mut hasher = TreeHasher::at(w[0] as u64).unwrap();
                for piece in data[w[0]..w[1]].chunks(70_001) {
                    hasher.update(piece);
                }
                hasher.finish()
            })
            .collect()
    }

    fn expected(data: &[u8]) -> Option<String> {
        Some(format!("blake3:{}", blake3::hash(data).to_hex()))
    }

    const MIB: usize = 1024 * 1024;

    #[test]
    fn parts_of_whole_mebibytes_give_the_objects_hash() {
        let data = bytes(23 * MIB + 12_345, 1);
        for size in [5, 8, 16] {
            let cuts: Vec<usize> = (1..)
                .map(|n| n * size * MIB)
                .take_while(|&c| c < data.len())
                .collect();
            assert_eq!(
                object_checksum(&trees(&data, &cuts)),
                expected(&data),
                "parts of {size} MiB"
            );
        }
    }

    #[test]
    fn uneven_chunk_aligned_parts_and_short_tails_give_the_objects_hash() {
        for (len, cuts) in [
            (3 * 1024 + 1, vec![1024]),
            (2 * 1024, vec![1024]),
            (7 * 1024, vec![2 * 1024, 4 * 1024]),
            (5 * MIB + 3, vec![4 * 1024, MIB + 4 * 1024, 4 * MIB]),
            (2 * MIB, vec![MIB]),
            (2 * MIB + 1, vec![]),
            (MIB + 1, vec![MIB]),
        ] {
            let data = bytes(len, 7);
            assert_eq!(
                object_checksum(&trees(&data, &cuts)),
                expected(&data),
                "{len} cut at {cuts:?}"
            );
        }
    }

    #[test]
    fn a_single_block_or_a_misplaced_part_gives_none() {
        let data = bytes(MIB, 3);
        assert_eq!(object_checksum(&trees(&data, &[])), None);
        assert_eq!(object_checksum(&trees(&bytes(100, 3), &[])), None);
        // Hashed at an offset it does not have.
        let mut parts = trees(&bytes(3 * MIB, 3), &[MIB]);
        let mut hasher = TreeHasher::at(2 * MIB as u64).unwrap();
        hasher.update(&bytes(3 * MIB, 3)[MIB..]);
        parts[1] = hasher.finish();
        assert_eq!(object_checksum(&parts), None);
        // Not on a chunk boundary, or ending inside a block with more to come.
        assert!(TreeHasher::at(1000).is_none());
        let data = bytes(4 * MIB, 5);
        assert_eq!(
            object_checksum(&trees(&data, &[1024 * 2, 1024 * 5])),
            expected(&data)
        );
        assert_eq!(object_checksum(&trees(&data, &[1024 * 3, 1024 * 5])), None);
        assert!(trees(&data, &[MIB + 1024])[0].can_be_followed());
        let parts = trees(&data, &[MIB + 3 * 1024]);
        assert!(!parts[0].can_be_followed());
        assert_eq!(object_checksum(&parts), None);
        assert_eq!(
            object_checksum(&parts[..1]),
            expected(&data[..MIB + 3 * 1024])
        );
    }

    #[test]
    fn trees_survive_their_hex_form() {
        let tree = &trees(&bytes(3 * MIB + 17, 9), &[])[0];
        let back = PartTree::from_hex(tree.offset, tree.len, &tree.cvs_hex()).unwrap();
        assert_eq!(&back, tree);
        assert_eq!(back.checksum(), tree.checksum());
        assert!(PartTree::from_hex(0, tree.len, "zz").is_none());
        assert!(PartTree::from_hex(0, tree.len + MIB as u64, &tree.cvs_hex()).is_none());
    }
}
