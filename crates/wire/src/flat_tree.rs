//! Flat in-order tree index math, as the JavaScript `flat-tree` package computes it.
//!
//! A binary tree is laid out in a flat array: leaves sit at even indices (`2 * n` for leaf `n`), and the parent
//! of two siblings sits between them. `depth` counts from the leaves (depth 0) up, and `offset` is the position
//! of a node among the nodes of its depth.
//!
//! ```text
//!       3
//!   1       5
//! 0   2   4   6
//! ```
//!
//! Results match the JS package for every index up to 2^53 (where JS numbers stop being exact). Beyond, results
//! wrap instead of panicking, so untrusted indices can never crash a caller; such trees never exist.

/// The depth of `index`: the number of trailing one bits.
pub fn depth(index: u64) -> u32 {
    (!index).trailing_zeros()
}

/// The offset of `index` among the nodes at its depth.
pub fn offset(index: u64) -> u64 {
    if index & 1 == 0 {
        return index / 2;
    }
    index.checked_shr(depth(index) + 1).unwrap_or(0)
}

/// The index of the node at `depth` and `offset`.
pub fn index(depth: u32, offset: u64) -> u64 {
    ((offset << 1) | 1).wrapping_shl(depth).wrapping_sub(1)
}

/// The node's parent.
pub fn parent(index_: u64) -> u64 {
    let d = depth(index_);
    index(d + 1, offset(index_) >> 1)
}

/// The node's sibling (the other child of its parent).
pub fn sibling(index_: u64) -> u64 {
    let d = depth(index_);
    index(d, offset(index_) ^ 1)
}

/// The left child of a parent node, `None` for a leaf.
pub fn left_child(index_: u64) -> Option<u64> {
    if index_ & 1 == 0 {
        return None;
    }
    let d = depth(index_);
    Some(index(d - 1, offset(index_) * 2))
}

/// The right child of a parent node, `None` for a leaf.
pub fn right_child(index_: u64) -> Option<u64> {
    if index_ & 1 == 0 {
        return None;
    }
    let d = depth(index_);
    Some(index(d - 1, offset(index_) * 2 + 1))
}

/// Both children of a parent node, `None` for a leaf.
pub fn children(index_: u64) -> Option<(u64, u64)> {
    Some((left_child(index_)?, right_child(index_)?))
}

/// The leftmost leaf under the node.
pub fn left_span(index_: u64) -> u64 {
    if index_ & 1 == 0 {
        return index_;
    }
    let d = depth(index_);
    offset(index_).checked_shl(d + 1).unwrap_or(0)
}

/// The rightmost leaf under the node.
pub fn right_span(index_: u64) -> u64 {
    if index_ & 1 == 0 {
        return index_;
    }
    let d = depth(index_);
    (offset(index_).wrapping_add(1))
        .checked_shl(d + 1)
        .unwrap_or(0)
        .wrapping_sub(2)
}

/// `(left_span, right_span)`.
pub fn spans(index_: u64) -> (u64, u64) {
    (left_span(index_), right_span(index_))
}

/// How many nodes (leaves and parents) the subtree rooted at the node holds.
pub fn count(index_: u64) -> u64 {
    if index_ & 1 == 0 {
        return 1;
    }
    pow2(depth(index_) + 1).wrapping_sub(1)
}

/// How many leaves the subtree rooted at the node holds.
pub fn count_leaves(index_: u64) -> u64 {
    count(index_).div_ceil(2)
}

/// The index of the next leaf after the subtree rooted at the node, plus one step (`nextLeaf`).
pub fn next_leaf(index_: u64) -> u64 {
    index_.wrapping_add(pow2(depth(index_))).wrapping_add(1)
}

/// The roots of the full trees covering the leaves before leaf index `index` (which must be even, i.e. `2 *
/// length`), left to right. `None` when `index` is odd.
pub fn full_roots(index: u64) -> Option<Vec<u64>> {
    if index & 1 == 1 {
        return None;
    }
    let mut result = Vec::new();
    let mut remaining = index / 2;
    let mut offset = 0u64;
    while remaining > 0 {
        // The largest power of two not above `remaining`.
        let factor = 1u64 << (63 - remaining.leading_zeros());
        result.push(offset + factor - 1);
        offset += 2 * factor;
        remaining -= factor;
    }
    Some(result)
}

/// A cursor over a flat tree, as `flat-tree`'s `iterator(index)`. Every move returns the new index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeIterator {
    /// Current node index.
    pub index: u64,
    /// Offset of the current node at its depth.
    pub offset: u64,
    /// `2 << depth`: twice the number of leaves under the node.
    pub factor: u64,
}

impl TreeIterator {
    /// An iterator positioned on `index`.
    pub fn new(index: u64) -> Self {
        let mut it = Self {
            index: 0,
            offset: 0,
            factor: 0,
        };
        it.seek(index);
        it
    }

    /// Moves to `index`.
    pub fn seek(&mut self, index_: u64) {
        self.index = index_;
        if index_ & 1 == 1 {
            self.offset = offset(index_);
            self.factor = pow2(depth(index_) + 1);
        } else {
            self.offset = index_ / 2;
            self.factor = 2;
        }
    }

    /// True when the node is a left child.
    pub fn is_left(&self) -> bool {
        self.offset & 1 == 0
    }

    /// True when the node is a right child.
    pub fn is_right(&self) -> bool {
        !self.is_left()
    }

    /// True when `index` is under (or is) the current node.
    pub fn contains(&self, index: u64) -> bool {
        let half = self.factor / 2;
        if index > self.index {
            index < self.index.wrapping_add(half)
        } else if index < self.index {
            // `index > self.index - half`, without underflow.
            index.wrapping_add(half) > self.index
        } else {
            true
        }
    }

    /// Number of nodes under the current one (inclusive).
    pub fn count(&self) -> u64 {
        if self.index & 1 == 0 {
            1
        } else {
            self.factor.wrapping_sub(1)
        }
    }

    /// Number of leaves under the current node.
    pub fn count_leaves(&self) -> u64 {
        self.count().div_ceil(2)
    }

    /// Previous node at the same depth (stays at offset 0).
    pub fn prev(&mut self) -> u64 {
        if self.offset == 0 {
            return self.index;
        }
        self.offset -= 1;
        self.index = self.index.wrapping_sub(self.factor);
        self.index
    }

    /// Next node at the same depth (`next()` in JS).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.offset = self.offset.wrapping_add(1);
        self.index = self.index.wrapping_add(self.factor);
        self.index
    }

    /// Moves to the sibling.
    pub fn sibling(&mut self) -> u64 {
        if self.is_left() {
            self.next()
        } else {
            self.prev()
        }
    }

    /// Moves to the parent.
    pub fn parent(&mut self) -> u64 {
        if self.offset & 1 == 1 {
            self.index = self.index.wrapping_sub(self.factor / 2);
            self.offset = (self.offset - 1) / 2;
        } else {
            self.index = self.index.wrapping_add(self.factor / 2);
            self.offset /= 2;
        }
        self.factor = self.factor.wrapping_mul(2);
        self.index
    }

    /// The leftmost leaf under the current node, without moving.
    pub fn peek_left_span(&self) -> u64 {
        self.index.wrapping_add(1).wrapping_sub(self.factor / 2)
    }

    /// The rightmost leaf under the current node, without moving.
    pub fn peek_right_span(&self) -> u64 {
        self.index.wrapping_add(self.factor / 2).wrapping_sub(1)
    }

    /// Moves to the leftmost leaf under the node.
    pub fn left_span(&mut self) -> u64 {
        let i = self.peek_left_span();
        self.seek(i);
        i
    }

    /// Moves to the rightmost leaf under the node.
    pub fn right_span(&mut self) -> u64 {
        let i = self.peek_right_span();
        self.seek(i);
        i
    }

    /// Moves to the left child (stays on a leaf).
    pub fn left_child(&mut self) -> u64 {
        if self.factor == 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index = self.index.wrapping_sub(self.factor / 2);
        self.offset = self.offset.wrapping_mul(2);
        self.index
    }

    /// Moves to the right child (stays on a leaf).
    pub fn right_child(&mut self) -> u64 {
        if self.factor == 2 {
            return self.index;
        }
        self.factor /= 2;
        self.index = self.index.wrapping_add(self.factor / 2);
        self.offset = self.offset.wrapping_mul(2).wrapping_add(1);
        self.index
    }

    /// Moves to the first leaf after the current subtree.
    pub fn next_tree(&mut self) -> u64 {
        let i = self.index.wrapping_add(self.factor / 2).wrapping_add(1);
        self.seek(i);
        i
    }

    /// Moves to the last leaf before the current subtree (leaf 0 at the start).
    pub fn prev_tree(&mut self) -> u64 {
        if self.offset == 0 {
            self.seek(0);
        } else {
            let i = self.index.wrapping_sub(self.factor / 2).wrapping_sub(1);
            self.seek(i);
        }
        self.index
    }

    /// From a leaf, climbs to the largest full root that fits before leaf index `index` (`2 * length`) and
    /// returns true; false when the iterator is not on a leaf or no root starts here.
    pub fn full_root(&mut self, index: u64) -> bool {
        if index <= self.index || self.index & 1 == 1 {
            return false;
        }
        while index
            > self
                .index
                .saturating_add(self.factor)
                .saturating_add(self.factor / 2)
        {
            if self.factor >= 1 << 62 {
                return false;
            }
            self.index += self.factor / 2;
            self.factor *= 2;
            self.offset /= 2;
        }
        true
    }
}

/// `2^n`, 0 when it does not fit.
fn pow2(n: u32) -> u64 {
    1u64.checked_shl(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tree() {
        assert_eq!(index(0, 0), 0);
        assert_eq!(index(1, 0), 1);
        assert_eq!(index(2, 0), 3);
        assert_eq!(index(1, 1), 5);
        assert_eq!(parent(0), 1);
        assert_eq!(parent(2), 1);
        assert_eq!(parent(1), 3);
        assert_eq!(parent(5), 3);
        assert_eq!(sibling(1), 5);
        assert_eq!(children(3), Some((1, 5)));
        assert_eq!(children(2), None);
        assert_eq!(spans(3), (0, 6));
        assert_eq!(full_roots(0), Some(vec![]));
        assert_eq!(full_roots(2), Some(vec![0]));
        assert_eq!(full_roots(6), Some(vec![1, 4]));
        assert_eq!(full_roots(16), Some(vec![7]));
        assert_eq!(full_roots(3), None);
        assert_eq!(count(7), 15);
        assert_eq!(count_leaves(7), 8);
    }

    #[test]
    fn iterator_walks() {
        let mut it = TreeIterator::new(0);
        assert_eq!(it.parent(), 1);
        assert_eq!(it.parent(), 3);
        assert_eq!(it.left_child(), 1);
        assert_eq!(it.sibling(), 5);
        assert_eq!(it.right_child(), 6);
        assert!(it.contains(6));
        let mut it = TreeIterator::new(0);
        assert!(it.full_root(6));
        assert_eq!(it.index, 1);
        assert_eq!(it.next_tree(), 4);
        assert!(it.full_root(6));
        assert_eq!(it.index, 4);
        it.next_tree();
        assert!(!it.full_root(6));
    }
}
