//! The order autobase gives the nodes of its causal DAG (JS autobase 7.28.1 `lib/topolist.js`), sans-IO.
//!
//! Every peer must put the nodes in the same order, since the views are the result of applying them in that
//! order. The rules:
//!
//! - a node comes after the nodes it links to: its dependencies (the heads it names, and the previous node of
//!   its own writer while that one is not indexed);
//! - a new node is placed by insertion: it first moves down past every node it does not directly link to, then
//!   up past every following node that does not link to it and sorts before it, comparing unlinked nodes by
//!   writer key (bytewise, lowest first), then by length ([`Dag::cmp`]);
//! - optimistic nodes (appended by a writer not yet added, a one-node batch with a value) sort after
//!   everything they do not have to precede, and non-optimistic nodes are compared with the next
//!   non-optimistic node instead of an optimistic one; a node that depends on optimistic nodes moves those
//!   down with it and back up after;
//! - the [`Topolist`] tracks, between flushes, how far back the order changed (`shared`) and how many applied
//!   nodes must be undone (`undo`), which is what tells the apply how much of the views to truncate. When the
//!   consensus indexes a batch of nodes (in its own order), the tip is rebuilt from the nodes that were not
//!   indexed.
//!
//! Nodes live in a [`Dag`] arena and are referred to by [`NodeId`]. The tests in
//! `tests/interop/tests/it/autobase_topolist.rs` run the same random DAGs through JS's `Topolist` and check the
//! orders and undo counts are identical.

use std::cmp::Ordering;

/// A node's index in its [`Dag`].
pub type NodeId = usize;

/// A node of the causal DAG, as the ordering sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagNode {
    /// The writer's key.
    pub key: [u8; 32],
    /// The node's length in its writer's core (1 for the first block).
    pub length: u64,
    /// Whether it sorts as optimistic (`optimistic && batch == 1 && value != null`).
    pub optimistic: bool,
    /// The nodes it links to that were not yet indexed when it was added.
    pub dependencies: Vec<NodeId>,
    /// The nodes that link to it.
    pub dependents: Vec<NodeId>,
    /// Its position in the list it was last sorted into.
    pub index: usize,
    /// Whether the consensus has indexed it (it leaves the tip).
    pub yielded: bool,
}

/// The nodes of a causal DAG.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dag {
    nodes: Vec<DagNode>,
}

impl Dag {
    /// An empty DAG.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node whose dependencies are already in the DAG (ids of other nodes; unknown ids and repeats are
    /// ignored). Indexed dependencies are dropped; the others learn the node as a dependent.
    pub fn add(
        &mut self,
        key: [u8; 32],
        length: u64,
        dependencies: &[NodeId],
        optimistic: bool,
    ) -> NodeId {
        let id = self.nodes.len();
        let mut deps = Vec::with_capacity(dependencies.len());
        for &d in dependencies {
            if d >= id || deps.contains(&d) || self.nodes[d].yielded {
                continue;
            }
            deps.push(d);
            self.nodes[d].dependents.push(id);
        }
        self.nodes.push(DagNode {
            key,
            length,
            optimistic,
            dependencies: deps,
            dependents: Vec::new(),
            index: 0,
            yielded: false,
        });
        id
    }

    /// The node `id` (panics on an id this DAG never gave out).
    pub fn node(&self, id: NodeId) -> &DagNode {
        &self.nodes[id]
    }

    /// The node `id`, mutable (for the linearizer, which edits the links as nodes are indexed; panics on an id
    /// this DAG never gave out).
    pub fn node_mut(&mut self, id: NodeId) -> &mut DagNode {
        &mut self.nodes[id]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the DAG has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Marks a node indexed (it is skipped when the tip is rebuilt).
    pub fn set_yielded(&mut self, id: NodeId) {
        self.nodes[id].yielded = true;
    }

    /// Whether `a` links directly to `b`: `b` is one of its dependencies, or its writer's previous node.
    pub fn links(&self, a: NodeId, b: NodeId) -> bool {
        let (na, nb) = (&self.nodes[a], &self.nodes[b]);
        nb.dependents.contains(&a)
            || (na.length > 0 && nb.length + 1 == na.length && na.key == nb.key)
    }

    /// The order of two nodes when the first is new: `Less` if `b` links to `a`, else by writer key, then
    /// length (never `Equal`: equal key and length count as greater).
    pub fn cmp(&self, a: NodeId, b: NodeId) -> Ordering {
        if self.links(b, a) {
            return Ordering::Less;
        }
        let (na, nb) = (&self.nodes[a], &self.nodes[b]);
        match na.key.cmp(&nb.key) {
            Ordering::Equal if na.length < nb.length => Ordering::Less,
            Ordering::Equal => Ordering::Greater,
            o => o,
        }
    }

    fn cmp_non_optimistic(&self, a: NodeId, b: NodeId, list: &[NodeId]) -> Ordering {
        if !self.nodes[b].optimistic {
            return self.cmp(a, b);
        }
        for &n in &list[self.nodes[b].index + 1..] {
            if !self.nodes[n].optimistic {
                return self.cmp(a, n);
            }
        }
        Ordering::Less
    }

    fn swap(&mut self, list: &mut [NodeId], i: usize, j: usize) {
        list.swap(i, j);
        self.nodes[list[i]].index = i;
        self.nodes[list[j]].index = j;
    }

    fn move_down(&mut self, node: NodeId, list: &mut [NodeId], offset: usize) {
        while self.nodes[node].index > offset {
            let i = self.nodes[node].index;
            if self.links(node, list[i - 1]) {
                break;
            }
            self.swap(list, i - 1, i);
        }
    }

    fn move_optimistic_up(&mut self, node: NodeId, list: &mut [NodeId], offset: usize) {
        while self.nodes[node].index + 1 < list.len() {
            let i = self.nodes[node].index;
            if self.links(list[i + 1], node) {
                break;
            }
            self.swap(list, i, i + 1);
        }
        // stable among optimistic siblings
        while self.nodes[node].index > offset {
            let i = self.nodes[node].index;
            let prev = list[i - 1];
            if !self.nodes[prev].optimistic || self.cmp(prev, node) != Ordering::Greater {
                break;
            }
            self.swap(list, i - 1, i);
        }
    }

    fn move_non_optimistic_up(&mut self, node: NodeId, list: &mut [NodeId]) {
        while self.nodes[node].index + 1 < list.len() {
            let i = self.nodes[node].index;
            if self.cmp_non_optimistic(node, list[i + 1], list) != Ordering::Greater {
                break;
            }
            self.swap(list, i, i + 1);
        }
    }

    fn move_down_and_up(&mut self, node: NodeId, list: &mut [NodeId], offset: usize) {
        self.move_down(node, list, offset);
        if self.nodes[node].optimistic {
            self.move_optimistic_up(node, list, offset);
        } else {
            self.move_non_optimistic_up(node, list);
        }
    }

    /// The optimistic nodes `node` reaches through optimistic dependencies, in `list` order.
    fn optimistic_deps(&self, node: NodeId, list: &[NodeId]) -> Vec<NodeId> {
        let mut seen: Vec<NodeId> = Vec::new();
        let mut stack = vec![node];
        while let Some(next) = stack.pop() {
            if seen.contains(&next) {
                continue;
            }
            if next != node && self.nodes[next].optimistic {
                seen.push(next);
            }
            for &d in &self.nodes[next].dependencies {
                if self.nodes[d].optimistic {
                    stack.push(d);
                }
            }
        }
        let mut out = Vec::with_capacity(seen.len());
        for &n in list.iter().rev() {
            if out.len() == seen.len() {
                break;
            }
            if seen.contains(&n) {
                out.push(n);
            }
        }
        out.reverse();
        out
    }

    /// Appends `node` to `list` and sorts it into place among `list[offset..]`; returns the first position
    /// of `list` whose node changed.
    pub fn add_sorted(&mut self, node: NodeId, list: &mut Vec<NodeId>, offset: usize) -> usize {
        list.push(node);
        self.nodes[node].index = list.len() - 1;
        let has_optimistic_deps = self.nodes[node]
            .dependencies
            .iter()
            .any(|&d| self.nodes[d].optimistic);
        if !has_optimistic_deps {
            self.move_down_and_up(node, list, offset);
            return self.nodes[node].index;
        }
        let opt = self.optimistic_deps(node, list);
        let mut before = Vec::with_capacity(opt.len());
        for &n in &opt {
            before.push(self.nodes[n].index);
            self.move_down(n, list, offset);
        }
        self.move_down_and_up(node, list, offset);
        for &n in opt.iter().rev() {
            self.move_optimistic_up(n, list, offset);
        }
        let mut shared = self.nodes[node].index;
        for (&n, &was) in opt.iter().zip(&before) {
            let now = self.nodes[n].index;
            if was != now {
                shared = shared.min(was).min(now);
            }
        }
        shared
    }
}

/// What changed in the order since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopoUpdate {
    /// How many nodes at the start of the previous order are still in place.
    pub shared: usize,
    /// How many applied nodes must be undone.
    pub undo: usize,
    /// `indexed.len() + tip.len()`.
    pub length: usize,
    /// The nodes indexed in this flush, in order.
    pub indexed: Vec<NodeId>,
    /// The un-indexed nodes, in order.
    pub tip: Vec<NodeId>,
}

/// The ordered un-indexed nodes (the tip of the linearized DAG) and what changed since the last flush.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topolist {
    tip: Vec<NodeId>,
    undo: usize,
    shared: usize,
}

impl Topolist {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current order.
    pub fn tip(&self) -> &[NodeId] {
        &self.tip
    }

    /// Sorts a new node into the tip.
    pub fn add(&mut self, dag: &mut Dag, node: NodeId) {
        let shared = dag.add_sorted(node, &mut self.tip, 0);
        self.track(shared);
    }

    fn track(&mut self, shared: usize) {
        if shared < self.shared {
            self.undo += self.shared - shared;
            self.shared = shared;
        }
    }

    /// Starts a new round: everything in the tip counts as applied.
    pub fn mark(&mut self) {
        self.shared = self.tip.len();
        self.undo = 0;
    }

    /// Takes `indexed` (the consensus's order of the nodes it indexed, each already marked yielded) off the
    /// tip, and reports what changed since the last flush.
    pub fn flush(&mut self, dag: &mut Dag, indexed: Vec<NodeId>) -> TopoUpdate {
        if !indexed.is_empty() {
            self.apply_indexed(dag, &indexed);
        }
        let update = TopoUpdate {
            shared: self.shared,
            undo: self.undo,
            length: indexed.len() + self.tip.len(),
            indexed,
            tip: self.tip.clone(),
        };
        self.mark();
        update
    }

    fn apply_indexed(&mut self, dag: &mut Dag, indexed: &[NodeId]) {
        let shared = self
            .tip
            .iter()
            .zip(indexed)
            .take_while(|(a, b)| a == b)
            .count();
        if shared < indexed.len() {
            self.track(shared);
        }
        let old = std::mem::take(&mut self.tip);
        let mut tip = Vec::with_capacity(old.len().saturating_sub(shared));
        for &node in old.iter().skip(shared) {
            if dag.node(node).yielded {
                continue;
            }
            let s = dag.add_sorted(node, &mut tip, 0);
            if s + 1 != tip.len() {
                self.track(shared + s);
            }
        }
        self.tip = tip;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn k(b: u8) -> [u8; 32] {
        [b; 32]
    }

    #[test]
    fn concurrent_nodes_sort_by_writer_key() {
        let mut dag = Dag::new();
        let mut list = Topolist::new();
        let b1 = dag.add(k(2), 1, &[], false);
        list.add(&mut dag, b1);
        let a1 = dag.add(k(1), 1, &[], false);
        list.add(&mut dag, a1);
        assert_eq!(list.tip(), &[a1, b1]);
        let u = list.flush(&mut dag, vec![]);
        // nothing was applied before this first flush: nothing to undo
        assert_eq!((u.shared, u.undo, u.length), (0, 0, 2));
        // a node linking both goes last whatever its key
        let c = dag.add(k(0), 1, &[a1, b1], false);
        list.add(&mut dag, c);
        assert_eq!(list.tip(), &[a1, b1, c]);
        // a later concurrent node of writer 1 sorts before b1 (after a1, which it follows)
        let a2 = dag.add(k(1), 2, &[a1], false);
        list.add(&mut dag, a2);
        assert_eq!(list.tip(), &[a1, a2, b1, c]);
        let u = list.flush(&mut dag, vec![]);
        assert_eq!((u.shared, u.undo), (1, 1));
    }

    #[test]
    fn indexing_rebuilds_the_tip() {
        let mut dag = Dag::new();
        let mut list = Topolist::new();
        let a1 = dag.add(k(1), 1, &[], false);
        let b1 = dag.add(k(2), 1, &[], false);
        list.add(&mut dag, a1);
        list.add(&mut dag, b1);
        list.flush(&mut dag, vec![]);
        // the consensus indexes b1 alone first: a1 must be undone and reapplied after it
        dag.set_yielded(b1);
        let u = list.flush(&mut dag, vec![b1]);
        assert_eq!(u.indexed, vec![b1]);
        assert_eq!(u.tip, vec![a1]);
        assert_eq!((u.shared, u.undo, u.length), (0, 2, 2));
    }

    #[test]
    fn optimistic_nodes_sort_last() {
        let mut dag = Dag::new();
        let mut list = Topolist::new();
        let o = dag.add(k(0), 1, &[], true);
        list.add(&mut dag, o);
        let b = dag.add(k(5), 1, &[], false);
        list.add(&mut dag, b);
        assert_eq!(list.tip(), &[b, o]);
        // a node depending on the optimistic one comes after it
        let c = dag.add(k(1), 1, &[o], false);
        list.add(&mut dag, c);
        let pos = |n| list.tip().iter().position(|&x| x == n).unwrap();
        assert!(pos(o) < pos(c));
    }

    #[test]
    fn bad_dependency_ids_are_ignored() {
        let mut dag = Dag::new();
        let a = dag.add(k(1), 1, &[7, 0, 0], false);
        let b = dag.add(k(1), 2, &[a, a, 99], false);
        assert!(dag.node(a).dependencies.is_empty());
        assert_eq!(dag.node(b).dependencies, vec![a]);
        assert_eq!(dag.node(a).dependents, vec![b]);
    }
}
