//! A Kademlia routing table with the semantics of the JS `kademlia-routing-table` package.
//!
//! The table has one bucket ("row") per bit of the id (256 for 32-byte ids). A node goes into the row
//! numbered by the index of the first bit where its id differs from ours (row 0 = farthest half of the id
//! space). Each row holds at most `k` (default 20) nodes, sorted by id. Adding to a full row is refused and
//! reported as [`AddResult::Full`], so the caller can decide whether to ping the oldest node of the row and
//! replace it (dht-rpc does that, see [`super::node`]).

use super::messages::Id;

/// The default bucket size.
pub const K: usize = 20;

/// What [`RoutingTable::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddResult {
    /// A new node was inserted.
    Added,
    /// A node with that id was already there and was replaced.
    Updated,
    /// The row for that id was full; nothing changed. Carries the row index.
    Full(usize),
}

/// A routing-table entry.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    /// The node id.
    pub id: Id,
    /// Whatever the caller stores with it.
    pub value: T,
}

/// A Kademlia routing table keyed by 32-byte ids, storing a `T` per node.
#[derive(Debug, Clone)]
pub struct RoutingTable<T> {
    id: Id,
    k: usize,
    rows: Vec<Vec<Entry<T>>>,
    size: usize,
}

impl<T> RoutingTable<T> {
    /// An empty table around our `id` with bucket size [`K`].
    pub fn new(id: Id) -> Self {
        Self::with_k(id, K)
    }

    /// An empty table with bucket size `k` (at least 1).
    pub fn with_k(id: Id, k: usize) -> Self {
        Self {
            id,
            k: k.max(1),
            rows: (0..id.len() * 8).map(|_| Vec::new()).collect(),
            size: 0,
        }
    }

    /// Our id.
    pub fn id(&self) -> &Id {
        &self.id
    }

    /// Bucket size.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.size
    }

    /// True when the table holds no node.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The row an id belongs in: the index of the first differing bit (our own id maps to the last row).
    pub fn row_index(&self, id: &Id) -> usize {
        for (i, (a, b)) in id.iter().zip(self.id.iter()).enumerate() {
            if a != b {
                return i * 8 + (a ^ b).leading_zeros() as usize;
            }
        }
        self.rows.len() - 1
    }

    /// The nodes of a row, sorted by id (empty for an index out of range).
    pub fn row(&self, index: usize) -> &[Entry<T>] {
        self.rows.get(index).map_or(&[], |r| r.as_slice())
    }

    fn search(&self, row: usize, id: &Id) -> Result<usize, usize> {
        // Ids in a row share their first `row / 8` bytes with ours, so comparing whole ids is equivalent to
        // the JS comparison from `byteOffset`.
        self.rows[row].binary_search_by(|e| e.id.cmp(id))
    }

    /// Adds or replaces a node. A full row refuses new nodes ([`AddResult::Full`]).
    pub fn add(&mut self, id: Id, value: T) -> AddResult {
        let row = self.row_index(&id);
        match self.search(row, &id) {
            Ok(i) => {
                self.rows[row][i] = Entry { id, value };
                AddResult::Updated
            }
            Err(_) if self.rows[row].len() >= self.k => AddResult::Full(row),
            Err(i) => {
                self.rows[row].insert(i, Entry { id, value });
                self.size += 1;
                AddResult::Added
            }
        }
    }

    /// Removes a node, returning what was stored with it.
    pub fn remove(&mut self, id: &Id) -> Option<T> {
        let row = self.row_index(id);
        let i = self.search(row, id).ok()?;
        self.size -= 1;
        Some(self.rows[row].remove(i).value)
    }

    /// The value stored for an id.
    pub fn get(&self, id: &Id) -> Option<&T> {
        let row = self.row_index(id);
        let i = self.search(row, id).ok()?;
        Some(&self.rows[row][i].value)
    }

    /// The value stored for an id, mutably.
    pub fn get_mut(&mut self, id: &Id) -> Option<&mut T> {
        let row = self.row_index(id);
        let i = self.search(row, id).ok()?;
        Some(&mut self.rows[row][i].value)
    }

    /// True when the id is in the table.
    pub fn contains(&self, id: &Id) -> bool {
        self.get(id).is_some()
    }

    /// The `n`-th node in row order (`random()` in the JS picks `n` uniformly below [`Self::len`]).
    pub fn nth(&self, mut n: usize) -> Option<&Entry<T>> {
        for row in &self.rows {
            if n < row.len() {
                return row.get(n);
            }
            n -= row.len();
        }
        None
    }

    /// Up to `k` nodes close to `target`, in the JS order: the target's row and the rows below it (nodes
    /// sharing fewer leading bits with us, towards row 0), then the rows above it. Within a row, id order.
    pub fn closest(&self, target: &Id, k: usize) -> Vec<&Entry<T>> {
        let mut out: Vec<&Entry<T>> = Vec::with_capacity(k.min(self.size));
        let d = self.row_index(target);
        let order = (0..=d).rev().chain(d + 1..self.rows.len());
        for i in order {
            if out.len() >= k {
                break;
            }
            let row = &self.rows[i];
            let missing = (k - out.len()).min(row.len());
            out.extend(row.iter().take(missing));
        }
        out
    }

    /// Every node, in [`Self::closest`] order for our own id (`toArray()`).
    pub fn to_vec(&self) -> Vec<&Entry<T>> {
        self.closest(&self.id, usize::MAX)
    }

    /// Iterates over every node in row order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry<T>> {
        self.rows.iter().flatten()
    }
}

/// XOR distance comparison of `a` and `b` relative to `target` (the `_compare` of the JS query).
pub fn compare_distance(target: &Id, a: &Id, b: &Id) -> std::cmp::Ordering {
    for i in 0..target.len() {
        if a[i] != b[i] {
            return (target[i] ^ a[i]).cmp(&(target[i] ^ b[i]));
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8, last: u8) -> Id {
        let mut id = [0u8; 32];
        id[0] = first;
        id[31] = last;
        id
    }

    #[test]
    fn rows_by_first_differing_bit() {
        let t: RoutingTable<()> = RoutingTable::new([0; 32]);
        assert_eq!(t.row_index(&id(0x80, 0)), 0);
        assert_eq!(t.row_index(&id(0x01, 0)), 7);
        assert_eq!(t.row_index(&id(0, 1)), 255);
        assert_eq!(t.row_index(&[0; 32]), 255);
    }

    #[test]
    fn full_row_refuses_and_updates_replace() {
        let mut t = RoutingTable::with_k([0; 32], 2);
        assert_eq!(t.add(id(0x80, 1), 1), AddResult::Added);
        assert_eq!(t.add(id(0x80, 2), 2), AddResult::Added);
        assert_eq!(t.add(id(0x80, 3), 3), AddResult::Full(0));
        assert_eq!(t.add(id(0x80, 2), 22), AddResult::Updated);
        assert_eq!(t.get(&id(0x80, 2)), Some(&22));
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove(&id(0x80, 1)), Some(1));
        assert_eq!(t.add(id(0x80, 3), 3), AddResult::Added);
        assert_eq!(t.len(), 2);
        assert!(t.remove(&id(0x80, 1)).is_none());
    }

    #[test]
    fn closest_prefers_own_row_then_lower_then_higher() {
        let mut t = RoutingTable::new([0; 32]);
        t.add(id(0x80, 0), "row0");
        t.add(id(0x40, 0), "row1");
        t.add(id(0x20, 0), "row2");
        t.add(id(0, 5), "row255");
        let names: Vec<_> = t
            .closest(&id(0x41, 0), 10)
            .iter()
            .map(|e| e.value)
            .collect();
        assert_eq!(names, ["row1", "row0", "row2", "row255"]);
        let names: Vec<_> = t.closest(&id(0x41, 0), 2).iter().map(|e| e.value).collect();
        assert_eq!(names, ["row1", "row0"]);
        assert_eq!(t.to_vec().len(), 4);
        assert_eq!(t.nth(3).map(|e| e.value), Some("row255"));
        assert!(t.nth(4).is_none());
    }

    #[test]
    fn compare_distance_orders_by_xor() {
        let t = id(0x0f, 0);
        assert_eq!(
            compare_distance(&t, &id(0x0e, 0), &id(0x10, 0)),
            std::cmp::Ordering::Less
        );
        assert_eq!(
            compare_distance(&t, &id(0x0e, 0), &id(0x0e, 0)),
            std::cmp::Ordering::Equal
        );
    }
}
