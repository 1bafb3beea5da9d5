//! RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.
//!
//! The tree is the one of RFC 9162 §2.1.1: a leaf hashes as `SHA-256(0x00 || data)`, an
//! interior node as `SHA-256(0x01 || left || right)`, and a tree of `n` leaves splits at the
//! largest power of two strictly below `n`.
//!
//! Storage uses the *stored hash* layout of Go's `golang.org/x/mod/sumdb/tlog`: every complete
//! (perfect) subtree hash is written exactly once, in the order in which it becomes known while
//! leaves are appended. An append-only store therefore keeps one flat sequence of hashes, and
//! appending leaf `n` appends `1 + trailing_ones(n)` hashes (see [`stored_hashes_for_record`]).
//! Any tree hash or proof for any size is computed from `O(log n)` of those stored hashes.
//!
//! Verification ([`verify_inclusion`], [`verify_consistency`]) is pure and follows the
//! algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2, after checking that the proof has exactly the
//! length those algorithms consume, so that a malformed proof gets a precise reason.
//!
//! Nothing here does IO: reads go through the tiny [`HashReader`] trait.

use aws_lc_rs::digest::{self, SHA256};

/// A SHA-256 hash: a leaf hash, a node hash, or a tree root.
pub type Hash = [u8; 32];

/// Length in bytes of a [`Hash`](type@Hash).
pub const HASH_LEN: usize = 32;

/// The hash of a leaf, `SHA-256(0x00 || data)` (RFC 9162 §2.1.1).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(data);
    to_hash(ctx.finish())
}

/// The hash of an interior node, `SHA-256(0x01 || left || right)` (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = digest::Context::new(&SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    to_hash(ctx.finish())
}

/// The root of the empty tree, `SHA-256("")` (RFC 9162 §2.1.1: MTH({}) is the hash of an
/// empty string).
pub fn empty_root() -> Hash {
    to_hash(digest::digest(&SHA256, b""))
}

fn to_hash(d: digest::Digest) -> Hash {
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// Converts bytes (for example a decoded base64 proof element) to a [`Hash`](type@Hash), rejecting any
/// length other than 32.
pub fn hash_from_slice(bytes: &[u8]) -> Result<Hash, ProofError> {
    bytes.try_into().map_err(|_| ProofError::MalformedHash {
        position: None,
        len: bytes.len(),
    })
}

/// Converts a list of byte strings (a proof as it comes off the wire) to hashes; the error
/// names the position of the first element that is not exactly 32 bytes.
pub fn hashes_from_slices<T: AsRef<[u8]>>(items: &[T]) -> Result<Vec<Hash>, ProofError> {
    items
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let b = b.as_ref();
            b.try_into().map_err(|_| ProofError::MalformedHash {
                position: Some(i),
                len: b.len(),
            })
        })
        .collect()
}

/// Why a proof did not verify. Every variant means "not proven"; none means "could not decide".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size (RFC 9162 §2.1.3.2 step 1).
    #[error("leaf index {index} is beyond the tree size {size}")]
    IndexBeyondSize { index: u64, size: u64 },
    /// The old tree of a consistency proof is larger than the new one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeDecreased { old: u64, new: u64 },
    /// The proof does not have the number of elements the sizes imply.
    #[error("proof has {actual} hashes, but sizes imply {expected}")]
    WrongProofLength { expected: usize, actual: usize },
    /// A hash (proof element, leaf hash or root) is not 32 bytes.
    #[error("{} is {len} bytes, not 32", match position { Some(i) => format!("proof element {i}"), None => "hash".to_string() })]
    MalformedHash { position: Option<usize>, len: usize },
    /// The root computed from the leaf and the inclusion proof differs from the expected root.
    #[error(
        "computed root {} does not match expected root {}",
        hex_short(computed),
        hex_short(expected)
    )]
    RootMismatch { computed: Hash, expected: Hash },
    /// Consistency: the proof does not reproduce the old tree's root.
    #[error(
        "computed old root {} does not match old root {}",
        hex_short(computed),
        hex_short(expected)
    )]
    OldRootMismatch { computed: Hash, expected: Hash },
    /// Consistency: the proof does not reproduce the new tree's root.
    #[error(
        "computed new root {} does not match new root {}",
        hex_short(computed),
        hex_short(expected)
    )]
    NewRootMismatch { computed: Hash, expected: Hash },
    /// Consistency between two trees of the same size: the roots differ, so one history was
    /// rewritten.
    #[error("trees of equal size {size} have different roots")]
    EqualSizeRootsDiffer { size: u64 },
}

fn hex_short(h: &Hash) -> String {
    h[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + "…"
}

/// Number of bits needed to represent `x` (0 for 0).
fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// The number of hashes in an inclusion proof for `index` in a tree of `size` leaves:
/// the "inner" part below the point where the leaf's path and the right border of the tree
/// meet, plus one hash per left-hand perfect subtree on the border above it.
/// 0 when `index >= size` (no proof exists).
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    if index >= size {
        return 0;
    }
    let inner = bit_len(index ^ (size - 1));
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// The number of hashes in a consistency proof between sizes `old` and `new`
/// (`0 < old < new`); 0 in the degenerate cases `old == 0` and `old == new`.
pub fn consistency_proof_len(old: u64, new: u64) -> usize {
    if old == 0 || old >= new {
        return 0;
    }
    // The proof is the inclusion path of the last old leaf, minus the levels that lie inside
    // the rightmost perfect subtree of the old tree, plus that subtree's own hash unless it is
    // the whole old tree (RFC 9162 §2.1.4.1, SUBPROOF with b = true).
    let shift = old.trailing_zeros();
    let inner = bit_len((old - 1) ^ (new - 1)) - shift;
    let border = ((old - 1) >> (inner + shift)).count_ones();
    let seed = if old.is_power_of_two() { 0 } else { 1 };
    (seed + inner + border) as usize
}

/// Verifies that `leaf_hash` is the leaf at `index` of the tree of `size` leaves with root
/// `root`, following RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(leaf_hash, index, size, proof)?;
    if &computed != root {
        return Err(ProofError::RootMismatch {
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// Computes the root implied by a leaf hash and its inclusion proof (RFC 9162 §2.1.3.2 steps
/// 1–4), without comparing it to anything.
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexBeyondSize { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        // The length check above guarantees s > 0 here (step 4a cannot fail).
        debug_assert!(s > 0);
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                // A right-border node with no sibling at this level: climb until the path is
                // a right child again.
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    debug_assert_eq!(s, 0);
    Ok(r)
}

/// Verifies that the tree of `size2` leaves with root `root2` extends the tree of `size1`
/// leaves with root `root1`, following RFC 9162 §2.1.4.2.
///
/// Degenerate cases: `size1 == size2` needs an empty proof and equal roots; `size1 == 0` needs
/// an empty proof (every tree extends the empty tree).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizeDecreased {
            old: size1,
            new: size2,
        });
    }
    let expected = consistency_proof_len(size1, size2);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if size1 == size2 {
        if root1 != root2 {
            return Err(ProofError::EqualSizeRootsDiffer { size: size1 });
        }
        return Ok(());
    }
    if size1 == 0 {
        return Ok(());
    }
    // Step 2: when size1 is a power of two the old root is itself the first node of the path.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(*root1);
    }
    path.extend_from_slice(proof);
    // Steps 3–4.
    let (mut f, mut s) = (size1 - 1, size2 - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (path[0], path[0]);
    // Step 6.
    for c in &path[1..] {
        debug_assert!(s > 0);
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    // Step 7.
    debug_assert_eq!(s, 0);
    if &fr != root1 {
        return Err(ProofError::OldRootMismatch {
            computed: fr,
            expected: *root1,
        });
    }
    if &sr != root2 {
        return Err(ProofError::NewRootMismatch {
            computed: sr,
            expected: *root2,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Stored hashes: the flat, append-only layout.
// ---------------------------------------------------------------------------------------------

/// Position in the flat stored-hash sequence of the first hash written for leaf `n` (its leaf
/// hash): every earlier leaf `j` wrote `1 + trailing_ones(j)` hashes, which sums to
/// `n + n/2 + n/4 + …`.
fn leaf_start(n: u64) -> u64 {
    let mut total = 0u64;
    let mut m = n;
    while m > 0 {
        total += m;
        m >>= 1;
    }
    total
}

/// Index in the stored-hash sequence of the hash of the `n`-th perfect subtree at `level`,
/// i.e. the subtree over leaves `[n·2^level, (n+1)·2^level)`. Level 0 is the leaf hashes.
///
/// That hash is written right after the subtree's last leaf, as its `level`-th new hash.
pub fn stored_hash_index(level: u8, n: u64) -> u64 {
    let last_leaf = ((n + 1) << level) - 1;
    leaf_start(last_leaf) + u64::from(level)
}

/// Number of stored hashes in a tree of `size` leaves.
pub fn stored_hash_count(size: u64) -> u64 {
    leaf_start(size)
}

/// The leaf whose append wrote the stored hash at `index` (so a bad stored hash can be named
/// by a record).
pub fn stored_hash_leaf(index: u64) -> u64 {
    // leaf_start is increasing; find the last leaf whose start is <= index.
    let (mut lo, mut hi) = (0u64, index + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if leaf_start(mid) <= index {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Read access to stored hashes by index: the only thing the tree code needs from storage.
pub trait HashReader {
    /// The storage's own error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Returns the stored hashes at `indexes`, in the same order (one hash per index).
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error>;
}

/// Why a tree hash or proof could not be computed from storage.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A proof was asked for a leaf that is not in the tree.
    #[error("leaf index {index} is beyond the tree size {size}")]
    IndexBeyondSize { index: u64, size: u64 },
    /// A consistency proof was asked from a larger to a smaller tree.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeDecreased { old: u64, new: u64 },
    /// The reader returned a different number of hashes than were requested.
    #[error("storage returned {returned} hashes for {requested} requested")]
    ShortRead { requested: usize, returned: usize },
    /// The reader failed.
    #[error("reading stored hashes failed")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn read<R: HashReader + ?Sized>(reader: &R, indexes: &[u64]) -> Result<Vec<Hash>, TreeError> {
    let hashes = reader
        .read_hashes(indexes)
        .map_err(|e| TreeError::Storage(Box::new(e)))?;
    if hashes.len() != indexes.len() {
        return Err(TreeError::ShortRead {
            requested: indexes.len(),
            returned: hashes.len(),
        });
    }
    Ok(hashes)
}

/// The new stored hashes to append when leaf `n` (0-based) with hash `leaf_hash` is added to a
/// tree of `n` leaves: the leaf hash, then one node hash per perfect subtree the leaf completes.
/// Reads `trailing_ones(n)` earlier hashes; [`Frontier::append`] computes the same without
/// reading.
pub fn stored_hashes_for_record<R: HashReader + ?Sized>(
    n: u64,
    leaf_hash: Hash,
    reader: &R,
) -> Result<Vec<Hash>, TreeError> {
    let completes = n.trailing_ones();
    // Left siblings, from the lowest level up: the subtree at level i just left of ours.
    let indexes: Vec<u64> = (0..completes)
        .map(|i| stored_hash_index(i as u8, (n >> i) - 1))
        .collect();
    let siblings = read(reader, &indexes)?;
    let mut out = Vec::with_capacity(1 + siblings.len());
    let mut h = leaf_hash;
    out.push(h);
    for s in &siblings {
        h = node_hash(s, &h);
        out.push(h);
    }
    Ok(out)
}

/// Largest power of two strictly below `n` (`n >= 2`): the RFC 9162 split point.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The perfect subtrees, left to right, that make up the RFC 9162 subtree over `[lo, hi)`, as
/// `(level, n)` stored-hash coordinates. The range must be a node of the RFC tree (or a prefix
/// `[0, size)`), which makes every piece aligned.
fn perfect_pieces(mut lo: u64, hi: u64, out: &mut Vec<u64>) -> usize {
    let mut count = 0;
    while lo < hi {
        let width = hi - lo;
        let mut k = if width.is_power_of_two() {
            width
        } else {
            split_point(width)
        };
        if lo != 0 {
            k = k.min(1u64 << lo.trailing_zeros());
        }
        let level = k.trailing_zeros() as u8;
        out.push(stored_hash_index(level, lo >> level));
        lo += k;
        count += 1;
    }
    count
}

/// Folds the perfect-subtree hashes of one range (left to right) into the range's hash.
fn fold_pieces(pieces: &[Hash]) -> Hash {
    let mut iter = pieces.iter().rev();
    let mut h = *iter
        .next()
        .expect("a non-empty range has at least one piece");
    for p in iter {
        h = node_hash(p, &h);
    }
    h
}

/// Reads and hashes a list of RFC subtree ranges in one storage round trip.
fn range_hashes<R: HashReader + ?Sized>(
    ranges: &[(u64, u64)],
    reader: &R,
) -> Result<Vec<Hash>, TreeError> {
    let mut indexes = Vec::new();
    let mut counts = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        counts.push(perfect_pieces(lo, hi, &mut indexes));
    }
    let hashes = read(reader, &indexes)?;
    let mut out = Vec::with_capacity(ranges.len());
    let mut at = 0;
    for c in counts {
        out.push(fold_pieces(&hashes[at..at + c]));
        at += c;
    }
    Ok(out)
}

/// The root of the tree of the first `size` leaves, `MTH(D[0:size])` (RFC 9162 §2.1.1), from at
/// most `log2(size) + 1` stored hashes.
pub fn tree_hash<R: HashReader + ?Sized>(size: u64, reader: &R) -> Result<Hash, TreeError> {
    if size == 0 {
        return Ok(empty_root());
    }
    Ok(range_hashes(&[(0, size)], reader)?[0])
}

/// Sibling ranges of the inclusion path PATH(m, D[lo:hi]) (RFC 9162 §2.1.3.1), leaf first.
fn inclusion_ranges(m: u64, lo: u64, hi: u64, out: &mut Vec<(u64, u64)>) {
    if hi - lo <= 1 {
        return;
    }
    let k = split_point(hi - lo);
    if m < lo + k {
        inclusion_ranges(m, lo, lo + k, out);
        out.push((lo + k, hi));
    } else {
        inclusion_ranges(m, lo + k, hi, out);
        out.push((lo, lo + k));
    }
}

/// The inclusion proof (audit path) of leaf `index` in the tree of `size` leaves
/// (RFC 9162 §2.1.3.1), leaf-side hash first, from `O(log size)` stored hashes.
pub fn inclusion_proof<R: HashReader + ?Sized>(
    index: u64,
    size: u64,
    reader: &R,
) -> Result<Vec<Hash>, TreeError> {
    if index >= size {
        return Err(TreeError::IndexBeyondSize { index, size });
    }
    let mut ranges = Vec::new();
    inclusion_ranges(index, 0, size, &mut ranges);
    range_hashes(&ranges, reader)
}

/// Ranges of SUBPROOF(m, D[lo:hi], b) (RFC 9162 §2.1.4.1).
fn consistency_ranges(m: u64, lo: u64, hi: u64, complete: bool, out: &mut Vec<(u64, u64)>) {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push((lo, hi));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        consistency_ranges(m, lo, lo + k, complete, out);
        out.push((lo + k, hi));
    } else {
        consistency_ranges(m - k, lo + k, hi, false, out);
        out.push((lo, lo + k));
    }
}

/// The consistency proof between the trees of `old` and `new` leaves (RFC 9162 §2.1.4.1),
/// from `O(log new)` stored hashes. Empty when `old == 0` or `old == new`.
pub fn consistency_proof<R: HashReader + ?Sized>(
    old: u64,
    new: u64,
    reader: &R,
) -> Result<Vec<Hash>, TreeError> {
    if old > new {
        return Err(TreeError::SizeDecreased { old, new });
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::new();
    consistency_ranges(old, 0, new, true, &mut ranges);
    range_hashes(&ranges, reader)
}

/// A stored hash that was asked for but is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored hash {index} is missing (only {len} stored)")]
pub struct MissingHash {
    pub index: u64,
    pub len: u64,
}

impl HashReader for [Hash] {
    type Error = MissingHash;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MissingHash> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|u| self.get(u).copied())
                    .ok_or(MissingHash {
                        index: i,
                        len: self.len() as u64,
                    })
            })
            .collect()
    }
}

impl HashReader for Vec<Hash> {
    type Error = MissingHash;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MissingHash> {
        self.as_slice().read_hashes(indexes)
    }
}

// ---------------------------------------------------------------------------------------------
// Incremental hashing.
// ---------------------------------------------------------------------------------------------

/// The right frontier (compact range `[0, size)`) of the tree: one hash per perfect subtree in
/// the binary decomposition of `size`, largest first. It is all a writer needs to append leaves
/// and compute new roots without reading old hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the frontier of the tree of `size` leaves from storage (`popcount(size)` reads).
    pub fn from_reader<R: HashReader + ?Sized>(size: u64, reader: &R) -> Result<Self, TreeError> {
        let mut indexes = Vec::new();
        perfect_pieces(0, size, &mut indexes);
        let peaks = read(reader, &indexes)?;
        Ok(Frontier { size, peaks })
    }

    /// A frontier from its parts; `None` unless there is exactly one peak per set bit of `size`.
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Option<Self> {
        (peaks.len() == size.count_ones() as usize).then_some(Frontier { size, peaks })
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree hashes, largest (leftmost) first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf hash and returns the stored hashes to append for it, exactly as
    /// [`stored_hashes_for_record`] would.
    pub fn append(&mut self, leaf_hash: Hash) -> Vec<Hash> {
        let completes = self.size.trailing_ones();
        let mut out = Vec::with_capacity(1 + completes as usize);
        let mut h = leaf_hash;
        out.push(h);
        for _ in 0..completes {
            let left = self.peaks.pop().expect("one peak per set bit of size");
            h = node_hash(&left, &h);
            out.push(h);
        }
        self.peaks.push(h);
        self.size += 1;
        out
    }

    /// The root of the current tree (RFC 9162 MTH over all appended leaves).
    pub fn root(&self) -> Hash {
        if self.peaks.is_empty() {
            return empty_root();
        }
        fold_pieces(&self.peaks)
    }
}

/// An in-memory append-only stored-hash log, for tests, benchmarks and small tools.
#[derive(Debug, Clone, Default)]
pub struct MemoryHashStore {
    hashes: Vec<Hash>,
    frontier: Frontier,
}

impl MemoryHashStore {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a record's canonical bytes as a leaf and returns its leaf index.
    pub fn append(&mut self, data: &[u8]) -> u64 {
        self.append_leaf_hash(leaf_hash(data))
    }

    /// Appends a leaf hash and returns its leaf index.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let index = self.frontier.size();
        let new = self.frontier.append(leaf);
        self.hashes.extend_from_slice(&new);
        index
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Every stored hash, in storage order.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }
}

impl HashReader for MemoryHashStore {
    type Error = MissingHash;
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MissingHash> {
        self.hashes.as_slice().read_hashes(indexes)
    }
}

// ---------------------------------------------------------------------------------------------
// Full recomputation (audit).
// ---------------------------------------------------------------------------------------------

/// The result of recomputing a whole tree from its leaf hashes and comparing it with storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recomputed {
    /// Number of leaf hashes given.
    pub size: u64,
    /// Root recomputed from the leaf hashes alone.
    pub root: Hash,
    /// The first place where storage disagrees with the recomputation, if any.
    pub first_mismatch: Option<StoredMismatch>,
}

/// A stored hash that differs from the recomputed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMismatch {
    /// The leaf whose append wrote this hash. Equal to the tree size when storage holds more
    /// hashes than the leaves account for.
    pub leaf_index: u64,
    /// Position in the stored-hash sequence.
    pub stored_index: u64,
    /// What the leaves say the hash must be (`None` for an extra stored hash).
    pub recomputed: Option<Hash>,
    /// What storage holds (`None` when storage is too short).
    pub stored: Option<Hash>,
}

/// Recomputes the tree from `leaf_hashes` (in leaf order), checking every stored hash on the
/// way, and reports the root and the first leaf whose stored hashes are wrong.
///
/// This is what `log verify` needs: a changed, deleted, inserted or reordered record changes
/// its leaf hash (or shifts the ones after it), so the first disagreement names the first bad
/// leaf even when the stored hashes themselves were left alone.
pub fn recompute<I: IntoIterator<Item = Hash>>(leaf_hashes: I, stored: &[Hash]) -> Recomputed {
    let mut frontier = Frontier::new();
    let mut first_mismatch = None;
    let mut at = 0usize;
    for leaf in leaf_hashes {
        let index = frontier.size();
        let new = frontier.append(leaf);
        if first_mismatch.is_none() {
            for h in new {
                let s = stored.get(at).copied();
                if s != Some(h) {
                    first_mismatch = Some(StoredMismatch {
                        leaf_index: index,
                        stored_index: at as u64,
                        recomputed: Some(h),
                        stored: s,
                    });
                    break;
                }
                at += 1;
            }
        }
    }
    if first_mismatch.is_none() && at < stored.len() {
        first_mismatch = Some(StoredMismatch {
            leaf_index: frontier.size(),
            stored_index: at as u64,
            recomputed: None,
            stored: Some(stored[at]),
        });
    }
    Recomputed {
        size: frontier.size(),
        root: frontier.root(),
        first_mismatch,
    }
}
