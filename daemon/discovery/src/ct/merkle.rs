//! Merkle tree arithmetic of RFC 6962 §2.1 (restated in RFC 9162 §2.1):
//! leaf and node hashes, the compact frontier a follower keeps while
//! appending leaves in order, consistency proofs (§2.1.2; verified with the
//! algorithm of RFC 9162 §2.1.4.2, and built from node hashes for tiled logs
//! that serve nodes rather than proofs), and the frontier of a tree whose
//! leaves were never read, from the audit path of its last leaf (§2.1.1).

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of a leaf: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Appends the leaf hash `leaf` to `frontier`, the frontier of a tree of
/// `size` leaves (roots of its maximal complete subtrees, highest first).
pub fn push(frontier: &mut Vec<Hash>, size: u64, leaf: Hash) {
    let mut hash = leaf;
    let mut s = size;
    // Each trailing one bit of the old size is a complete subtree of the
    // same height as the one being carried: merge them.
    while s & 1 == 1 {
        match frontier.pop() {
            Some(left) => hash = node_hash(&left, &hash),
            None => break,
        }
        s >>= 1;
    }
    frontier.push(hash);
}

/// The root of the tree a frontier stands for.
pub fn root(frontier: &[Hash]) -> Hash {
    let mut nodes = frontier.iter().rev();
    let Some(last) = nodes.next() else {
        return empty_root();
    };
    nodes.fold(*last, |right, left| node_hash(left, &right))
}

/// Whether `frontier` has the shape of a tree of `size` leaves.
pub fn frontier_fits(frontier: &[Hash], size: u64) -> bool {
    frontier.len() == size.count_ones() as usize
}

/// The leaf ranges `[start, end)` of the frontier's subtrees for a tree of
/// `size` leaves, highest first.
pub fn frontier_ranges(size: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for bit in (0..64).rev() {
        let width = 1u64 << bit;
        if size & width != 0 {
            ranges.push((start, start + width));
            start += width;
        }
    }
    ranges
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The consistency proof between trees of `old` and `new` leaves (RFC 6962
/// §2.1.2 PROOF), built from `subtree(start, end)`, the hash of the leaves
/// `[start, end)` as the new tree holds them. Used for tiled logs, whose
/// tiles hold the nodes the proof is made of.
pub fn consistency_proof<E>(
    old: u64,
    new: u64,
    subtree: &mut impl FnMut(u64, u64) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    let mut proof = Vec::new();
    if old == 0 || old >= new {
        return Ok(proof);
    }
    subproof(old, 0, new, true, subtree, &mut proof)?;
    Ok(proof)
}

fn subproof<E>(
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    subtree: &mut impl FnMut(u64, u64) -> Result<Hash, E>,
    proof: &mut Vec<Hash>,
) -> Result<(), E> {
    let n = end - start;
    if m == n {
        if !whole {
            proof.push(subtree(start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(m, start, start + k, whole, subtree, proof)?;
        proof.push(subtree(start + k, end)?);
    } else {
        subproof(m - k, start + k, end, false, subtree, proof)?;
        proof.push(subtree(start, start + k)?);
    }
    Ok(())
}

/// Verifies that the tree of `old` leaves with root `old_root` is a prefix
/// of the tree of `new` leaves with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), String> {
    if old > new {
        return Err(format!("the tree shrank from {old} to {new}"));
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(format!("two different roots for size {old}"))
        };
    }
    if old == 0 {
        return Ok(());
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err("empty consistency proof".to_owned());
    };
    let mut fnode = old - 1;
    let mut snode = new - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = *first;
    let mut sr = *first;
    for c in rest {
        if snode == 0 {
            return Err("consistency proof too long".to_owned());
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err("consistency proof too short".to_owned());
    }
    if &fr != old_root {
        return Err(format!("the proof does not lead to the root of size {old}"));
    }
    if &sr != new_root {
        return Err(format!("the proof does not lead to the root of size {new}"));
    }
    Ok(())
}

/// The frontier of a tree of `size` leaves from the hash of its last leaf
/// and that leaf's audit path (RFC 6962 §2.1.1; for the last leaf every
/// path node is a left sibling). The caller checks `root(frontier)`
/// against the signed root.
pub fn frontier_from_last_leaf(size: u64, leaf: Hash, path: &[Hash]) -> Result<Vec<Hash>, String> {
    if size == 0 {
        return Err("an empty tree has no last leaf".to_owned());
    }
    let mut index = size - 1;
    let mut hash = leaf;
    let mut higher = Vec::new();
    let mut low: Option<Hash> = None;
    let mut nodes = path.iter();
    loop {
        if index == 0 {
            break;
        }
        if index & 1 == 1 {
            // A left sibling inside the lowest frontier subtree.
            let Some(sibling) = nodes.next() else {
                return Err("audit path too short".to_owned());
            };
            if low.is_some() {
                // Above the lowest subtree every sibling is a whole
                // frontier subtree, found by the branch below.
                higher.push(*sibling);
            } else {
                hash = node_hash(sibling, &hash);
            }
        } else if low.is_none() {
            low = Some(hash);
        }
        index >>= 1;
    }
    if nodes.next().is_some() {
        return Err("audit path too long".to_owned());
    }
    let mut frontier: Vec<Hash> = higher.into_iter().rev().collect();
    frontier.push(low.unwrap_or(hash));
    if !frontier_fits(&frontier, size) {
        return Err("audit path does not fit the tree size".to_owned());
    }
    Ok(frontier)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// MTH of RFC 6962 §2.1, straight from the definition.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn frontier_root_matches_the_definition() {
        let all = leaves(70);
        let mut frontier = Vec::new();
        for (i, leaf) in all.iter().enumerate() {
            push(&mut frontier, i as u64, *leaf);
            assert!(frontier_fits(&frontier, i as u64 + 1));
            assert_eq!(root(&frontier), mth(&all[..=i]), "size {}", i + 1);
        }
        assert_eq!(root(&[]), empty_root());
    }

    #[test]
    fn consistency_proofs_verify_and_catch_forks() {
        let all = leaves(40);
        for new in 1..=40u64 {
            for old in 1..=new {
                let mut subtree = |a: u64, b: u64| Ok::<_, ()>(mth(&all[a as usize..b as usize]));
                let proof = consistency_proof(old, new, &mut subtree).unwrap();
                let (o, n) = (mth(&all[..old as usize]), mth(&all[..new as usize]));
                verify_consistency(old, new, &o, &n, &proof).unwrap();
                if old < new {
                    let mut other = all.clone();
                    other[old as usize - 1] = [9; 32];
                    let forked = mth(&other[..new as usize]);
                    assert!(verify_consistency(old, new, &o, &forked, &proof).is_err());
                    assert!(verify_consistency(old, new, &[1; 32], &n, &proof).is_err());
                }
            }
        }
        assert!(verify_consistency(5, 4, &[0; 32], &[0; 32], &[]).is_err());
    }

    #[test]
    fn frontier_from_the_last_leafs_path() {
        let all = leaves(37);
        for size in 1..=37u64 {
            // The audit path of the last leaf, built from the definition
            // (RFC 6962 §2.1.1 PATH).
            fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
                let n = leaves.len();
                if n <= 1 {
                    return;
                }
                let k = split(n as u64) as usize;
                if m < k {
                    path(m, &leaves[..k], out);
                    out.push(mth(&leaves[k..]));
                } else {
                    path(m - k, &leaves[k..], out);
                    out.push(mth(&leaves[..k]));
                }
            }
            let mut audit = Vec::new();
            let s = size as usize;
            path(s - 1, &all[..s], &mut audit);
            let frontier = frontier_from_last_leaf(size, all[s - 1], &audit).unwrap();
            let mut expected = Vec::new();
            for (i, leaf) in all[..s].iter().enumerate() {
                push(&mut expected, i as u64, *leaf);
            }
            assert_eq!(frontier, expected, "size {size}");
        }
    }
}
