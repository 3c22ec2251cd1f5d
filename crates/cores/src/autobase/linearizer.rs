//! The linearizer of autobase's causal DAG (JS autobase 7.28.1 `lib/linearizer.js`, with the writers' node
//! buffers of `lib/writer.js` and the dependency checks of `Writer._ensureNodeDependencies`), sans-IO.
//!
//! Feed it the writers' nodes in causal order ([`Linearizer::add_node`]); each [`Linearizer::update`] returns
//! what JS's `linearizer.update()` returns: the nodes the [`consensus`](super::consensus) indexed in this round
//! (in their final order), the new order of the un-indexed tip, and how many of the nodes applied since the last
//! update must be undone (`shared`/`undo`/`length`, as [`TopoUpdate`]). The driver (the apply, see the module
//! docs of [`autobase`](super)) then shifts the indexed nodes off their writers ([`Linearizer::shift_writer`]),
//! as JS's apply-state does, before the next round.
//!
//! A linearizer is made for one indexer set: when the indexers change, the base builds a new one from the
//! indexed state ([`Linearizer::new`] with the indexed DAG heads, writers at their indexed lengths) and feeds it
//! the un-indexed nodes again.
//!
//! Bad input is an error, never a panic: a node of an unknown writer, a gap in a writer's sequence, a head that
//! names a node not yet added (or a later node of its own writer, or length 0), the same head twice, a head inside
//! another writer's unfinished batch, or a batch whose counts do not go down by one. (JS waits for a missing
//! head and asserts on a duplicate one.)

use std::collections::{HashMap, HashSet, VecDeque};

use super::clock::{Clock, WriterId};
use super::consensus::Consensus;
use super::topolist::{Dag, NodeId, TopoUpdate, Topolist};

/// A node of the DAG named by its writer's key and its length in that writer's core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Head {
    /// The writer's key.
    pub key: [u8; 32],
    /// The node's length (its seq + 1).
    pub length: u64,
}

/// A writer block, as the linearizer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInput {
    /// The writer's key.
    pub key: [u8; 32],
    /// Its length in the writer's core (seq + 1); must be the writer's next.
    pub length: u64,
    /// The DAG heads the writer had seen (`node.heads`).
    pub heads: Vec<Head>,
    /// Nodes left in the writer's atomic batch, 1 on the last.
    pub batch: u64,
    /// The application's value (`None` for an ack).
    pub value: Option<Vec<u8>>,
    /// The block's optimistic flag.
    pub optimistic: bool,
}

/// Why a node was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinearizerError {
    /// The node's writer was never added.
    #[error("unknown writer {}", hex::encode(.0))]
    UnknownWriter([u8; 32]),
    /// The node is not its writer's next.
    #[error("writer {} expects length {expected}, got {got}", hex::encode(.key))]
    SeqGap {
        /// The writer.
        key: [u8; 32],
        /// Its next length.
        expected: u64,
        /// The node's length.
        got: u64,
    },
    /// A head names a node that is not in the DAG yet (or a writer never added).
    #[error("head {}:{} is not in the DAG", hex::encode(.0.key), .0.length)]
    MissingHead(Head),
    /// A head names length 0, or a node of its own writer at or after itself.
    #[error("bad head {}:{}", hex::encode(.0.key), .0.length)]
    BadHead(Head),
    /// The same head twice.
    #[error("head {}:{} named twice", hex::encode(.0.key), .0.length)]
    DuplicateHead(Head),
    /// A head names a node inside another writer's batch (not its last).
    #[error("head {}:{} is inside a batch", hex::encode(.0.key), .0.length)]
    HeadInsideBatch(Head),
    /// A batch count of 0, or one that does not follow the previous node's.
    #[error("bad batch count {batch} at length {length}")]
    BadBatch {
        /// The node's length.
        length: u64,
        /// Its batch count.
        batch: u64,
    },
}

/// A node of the linearizer's DAG.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its writer.
    pub writer: WriterId,
    /// Its length in its writer's core.
    pub length: u64,
    /// Nodes left in its batch (1 on the last).
    pub batch: u64,
    /// The application's value (`None` for an ack).
    pub value: Option<Vec<u8>>,
    /// Its heads minus the ones that were already indexed when it was added (JS `node.heads`).
    pub heads: Vec<Head>,
    /// The heads it was written with (JS `node.actualHeads`).
    pub actual_heads: Vec<Head>,
    /// The indexer lengths it has seen.
    pub clock: Clock,
    /// Whether it is optimistic (JS `node.optimistic`: the block's flag, a one-node batch with a value).
    pub optimistic: bool,
    dropped: usize,
    yielding: bool,
}

/// A writer's node buffer (JS `Writer`): the nodes from its indexed length on.
#[derive(Debug, Clone)]
pub struct Writer {
    /// Its key.
    pub key: [u8; 32],
    /// Whether it is one of the linearizer's indexers.
    pub is_active_indexer: bool,
    /// Whether the system removed it.
    pub is_removed: bool,
    offset: u64,
    nodes: VecDeque<NodeId>,
    pending: Vec<Pending>,
}

#[derive(Debug, Clone)]
enum Dep {
    Node(NodeId),
    Pending(usize),
}

#[derive(Debug, Clone)]
struct Pending {
    input: NodeInput,
    heads: Vec<Head>,
    deps: Vec<Dep>,
}

impl Writer {
    /// Its indexed length (nodes below it were shifted off).
    pub fn indexed(&self) -> u64 {
        self.offset
    }

    /// Its length in the DAG (nodes added).
    pub fn length(&self) -> u64 {
        self.offset + self.nodes.len() as u64
    }

    fn loaded(&self) -> u64 {
        self.length() + self.pending.len() as u64
    }
}

/// The nodes and writers, shared by the linearizer and its consensus.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub(crate) dag: Dag,
    pub(crate) nodes: Vec<Node>,
    pub(crate) writers: Vec<Writer>,
}

impl Graph {
    /// The writer's node at `seq` (its length - 1), if added and not shifted off.
    pub(crate) fn get(&self, w: WriterId, seq: u64) -> Option<NodeId> {
        let wr = &self.writers[w];
        if seq < wr.offset || seq >= wr.length() {
            return None;
        }
        wr.nodes.get((seq - wr.offset) as usize).copied()
    }

    pub(crate) fn get_signed(&self, w: WriterId, seq: i128) -> Option<NodeId> {
        u64::try_from(seq).ok().and_then(|s| self.get(w, s))
    }

    /// The writer's last node.
    pub(crate) fn head(&self, w: WriterId) -> Option<NodeId> {
        self.writers[w]
            .length()
            .checked_sub(1)
            .and_then(|s| self.get(w, s))
    }

    /// Whether node `a`'s clock includes node `b`.
    pub(crate) fn sees(&self, a: NodeId, b: NodeId) -> bool {
        let nb = &self.nodes[b];
        self.nodes[a].clock.includes(nb.writer, nb.length)
    }

    fn head_of(&self, n: NodeId) -> Head {
        let node = &self.nodes[n];
        Head {
            key: self.writers[node.writer].key,
            length: node.length,
        }
    }
}

/// The linearizer: the DAG of un-indexed nodes, its order and its consensus.
#[derive(Debug, Clone)]
pub struct Linearizer {
    g: Graph,
    by_key: HashMap<[u8; 32], WriterId>,
    heads: Vec<NodeId>,
    tails: Vec<NodeId>,
    tip: Topolist,
    size: usize,
    updated: bool,
    consensus: Consensus,
    initial_heads: Vec<Head>,
}

impl Linearizer {
    /// A linearizer for `indexers` (keys with their writers' indexed lengths, in the system's order) over a
    /// DAG whose indexed part has `heads` (the system's heads; empty for a new base). Other writers are added
    /// with [`Linearizer::add_writer`].
    pub fn new(indexers: &[Head], heads: &[Head]) -> Self {
        let mut lin = Self {
            g: Graph::default(),
            by_key: HashMap::new(),
            heads: Vec::new(),
            tails: Vec::new(),
            tip: Topolist::new(),
            size: 0,
            updated: false,
            consensus: Consensus::new(Vec::new()),
            initial_heads: heads.to_vec(),
        };
        let mut ids = Vec::new();
        for h in indexers {
            let id = lin.add_writer(h.key, h.length, false);
            if !ids.contains(&id) {
                lin.g.writers[id].is_active_indexer = true;
                ids.push(id);
            }
        }
        let mut consensus = Consensus::new(ids);
        for h in heads {
            let id = lin.add_writer(h.key, h.length, false);
            consensus.removed.set(id, h.length);
        }
        lin.consensus = consensus;
        lin
    }
    /// Adds a writer whose nodes up to `indexed` are indexed (a no-op but for `removed` if it exists).
    pub fn add_writer(&mut self, key: [u8; 32], indexed: u64, removed: bool) -> WriterId {
        if let Some(&id) = self.by_key.get(&key) {
            self.g.writers[id].is_removed = removed;
            return id;
        }
        self.g.writers.push(Writer {
            key,
            is_active_indexer: false,
            is_removed: removed,
            offset: indexed,
            nodes: VecDeque::new(),
            pending: Vec::new(),
        });
        let id = self.g.writers.len() - 1;
        self.by_key.insert(key, id);
        id
    }

    /// Marks a writer removed or not (it changes what [`Linearizer::causal_dependencies`] walks).
    pub fn set_removed(&mut self, key: &[u8; 32], removed: bool) {
        if let Some(&id) = self.by_key.get(key) {
            self.g.writers[id].is_removed = removed;
        }
    }

    /// The writer with this key.
    pub fn writer_id(&self, key: &[u8; 32]) -> Option<WriterId> {
        self.by_key.get(key).copied()
    }

    /// A writer.
    pub fn writer(&self, id: WriterId) -> &Writer {
        &self.g.writers[id]
    }

    /// A node (panics on an id this linearizer never gave out).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.g.nodes[id]
    }

    /// A node as writer key and length.
    pub fn node_head(&self, id: NodeId) -> Head {
        self.g.head_of(id)
    }

    /// The indexers, in order.
    pub fn indexers(&self) -> Vec<[u8; 32]> {
        self.consensus
            .indexers()
            .iter()
            .map(|&w| self.g.writers[w].key)
            .collect()
    }

    /// Number of un-indexed nodes in the DAG.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The current order of the un-indexed nodes.
    pub fn tip(&self) -> &[NodeId] {
        self.tip.tip()
    }

    /// The DAG's heads, the ones a new node links to (JS `getHeads()`).
    pub fn heads(&self) -> Vec<Head> {
        let mut out = self.initial_heads.clone();
        out.extend(self.heads.iter().map(|&n| self.g.head_of(n)));
        out
    }

    /// Adds a writer's next node. Nodes of a batch are held back until its last one (batch 1) arrives, then
    /// all join the DAG; returns the nodes that joined.
    pub fn add_node(&mut self, input: NodeInput) -> Result<Vec<NodeId>, LinearizerError> {
        let w = *self
            .by_key
            .get(&input.key)
            .ok_or(LinearizerError::UnknownWriter(input.key))?;
        let writer = &self.g.writers[w];
        let expected = writer.loaded() + 1;
        if input.length != expected {
            return Err(LinearizerError::SeqGap {
                key: input.key,
                expected,
                got: input.length,
            });
        }
        let bad_batch = LinearizerError::BadBatch {
            length: input.length,
            batch: input.batch,
        };
        if input.batch == 0 {
            return Err(bad_batch);
        }
        if let Some(last) = writer.pending.last() {
            if input.batch + 1 != last.input.batch {
                return Err(bad_batch);
            }
        }
        let mut deps: Vec<Dep> = Vec::new();
        let mut heads = Vec::new();
        for &h in &input.heads {
            let hw = *self
                .by_key
                .get(&h.key)
                .ok_or(LinearizerError::MissingHead(h))?;
            if h.length == 0 || (hw == w && h.length >= input.length) {
                return Err(LinearizerError::BadHead(h));
            }
            let dep = if hw == w {
                self.loaded_node(w, h.length - 1)
            } else {
                let hwr = &self.g.writers[hw];
                if hwr.length() < h.length {
                    return Err(LinearizerError::MissingHead(h));
                }
                let n = self.g.get(hw, h.length - 1);
                if let Some(n) = n {
                    if self.g.nodes[n].batch != 1 {
                        return Err(LinearizerError::HeadInsideBatch(h));
                    }
                }
                n.map(Dep::Node)
            };
            match dep {
                None => {
                    // already indexed and shifted off: JS drops the head
                    if heads.contains(&h) {
                        return Err(LinearizerError::DuplicateHead(h));
                    }
                }
                Some(d) => {
                    if deps.iter().any(|x| same_dep(x, &d)) {
                        return Err(LinearizerError::DuplicateHead(h));
                    }
                    deps.push(d);
                    heads.push(h);
                }
            }
        }
        // the previous node of the writer, while it is not indexed
        let offset = input.length - 1;
        if offset > self.g.writers[w].indexed() {
            if let Some(prev) = self.loaded_node(w, offset - 1) {
                if !deps.iter().any(|x| same_dep(x, &prev)) {
                    deps.push(prev);
                }
            }
        }
        let last = input.batch == 1;
        self.g.writers[w]
            .pending
            .push(Pending { input, heads, deps });
        if !last {
            return Ok(Vec::new());
        }
        let pending = std::mem::take(&mut self.g.writers[w].pending);
        let mut added: Vec<NodeId> = Vec::with_capacity(pending.len());
        for p in pending {
            let deps: Vec<NodeId> = p
                .deps
                .iter()
                .map(|d| match *d {
                    Dep::Node(n) => n,
                    Dep::Pending(i) => added[i],
                })
                .collect();
            let optimistic = p.input.optimistic && p.input.batch == 1 && p.input.value.is_some();
            let id = self
                .g
                .dag
                .add(p.input.key, p.input.length, &deps, optimistic);
            self.g.nodes.push(Node {
                writer: w,
                length: p.input.length,
                batch: p.input.batch,
                value: p.input.value,
                heads: p.heads,
                actual_heads: p.input.heads,
                clock: Clock::new(),
                optimistic,
                dropped: 0,
                yielding: false,
            });
            self.g.writers[w].nodes.push_back(id);
            self.add_head(id);
            added.push(id);
        }
        Ok(added)
    }

    /// The writer's node at `seq` among the added and the pending ones.
    fn loaded_node(&self, w: WriterId, seq: u64) -> Option<Dep> {
        let wr = &self.g.writers[w];
        if seq < wr.offset {
            return None;
        }
        if seq < wr.length() {
            return self.g.get(w, seq).map(Dep::Node);
        }
        let i = (seq - wr.length()) as usize;
        (i < wr.pending.len()).then_some(Dep::Pending(i))
    }

    fn add_head(&mut self, node: NodeId) {
        // active(): the dependencies were filtered by the DAG (indexed ones dropped), merge their clocks
        let deps = self.g.dag.node(node).dependencies.clone();
        let mut clock = Clock::new();
        for d in deps {
            clock.add(&self.g.nodes[d].clock);
        }
        let n = &self.g.nodes[node];
        if self.g.writers[n.writer].is_active_indexer {
            clock.set(n.writer, n.length);
        }
        self.g.nodes[node].clock = clock;

        if !self.initial_heads.is_empty() {
            let actual = &self.g.nodes[node].actual_heads;
            self.initial_heads.retain(|h| !actual.contains(h));
        }
        if self.is_tail(node) {
            self.tails.push(node);
        }
        let actual = &self.g.nodes[node].actual_heads;
        let g = &self.g;
        self.heads.retain(|&h| !actual.contains(&g.head_of(h)));
        self.tip.add(&mut self.g.dag, node);
        if self.g.writers[self.g.nodes[node].writer].is_active_indexer {
            self.consensus.add_head(&self.g, node);
        }
        self.size += 1;
        self.heads.push(node);
        self.updated = true;
    }

    fn is_tail(&self, node: NodeId) -> bool {
        self.g.dag.node(node).dependencies.len() == self.g.nodes[node].dropped
    }

    /// Runs the consensus: returns what changed since the last update, or `None` when no node was added since.
    pub fn update(&mut self) -> Option<TopoUpdate> {
        if !self.updated {
            return None;
        }
        self.updated = false;
        let mut indexed = Vec::new();
        loop {
            let nodes = self.consensus.shift(&self.g);
            if nodes.is_empty() {
                break;
            }
            self.yield_nodes(nodes, &mut indexed);
        }
        Some(self.tip.flush(&mut self.g.dag, indexed))
    }

    fn yield_nodes(&mut self, mut nodes: Vec<NodeId>, indexed: &mut Vec<NodeId>) {
        let offset = indexed.len();
        let mut tails = Vec::new();
        while let Some(node) = nodes.pop() {
            if self.g.nodes[node].yielding {
                continue;
            }
            self.g.nodes[node].yielding = true;
            if self.is_tail(node) {
                tails.push(node);
            }
            nodes.extend_from_slice(&self.g.dag.node(node).dependencies);
        }
        while let Some(tail) = tails.pop() {
            let batch = self.remove_batch(tail);
            for &n in &batch {
                self.g.dag.add_sorted(n, indexed, offset);
            }
            let Some(&last) = batch.last() else { continue };
            let dependents = self.g.dag.node(last).dependents.clone();
            for dep in dependents {
                if self.is_tail(dep) && self.g.nodes[dep].yielding {
                    tails.push(dep);
                }
            }
        }
    }

    fn is_future_tail(&self, node: NodeId) -> bool {
        let mut dropped = self.g.nodes[node].dropped;
        for &dep in &self.g.dag.node(node).dependencies {
            if self.g.dag.node(dep).yielded {
                continue;
            }
            if dropped == 0 {
                return false;
            }
            dropped -= 1;
        }
        true
    }

    fn remove_node(&mut self, node: NodeId) -> NodeId {
        self.tails.retain(|&t| t != node);
        self.heads.retain(|&h| h != node);
        self.consensus.remove(&self.g, node);
        let dependents = self.g.dag.node(node).dependents.clone();
        for d in dependents {
            let has = self.g.dag.node(d).dependencies.contains(&node);
            if self.g.nodes[d].yielding && has {
                self.g.nodes[d].dropped += 1;
            } else {
                self.g.dag.node_mut(d).dependencies.retain(|&x| x != node);
            }
            if self.is_future_tail(d) && !self.tails.contains(&d) {
                self.tails.push(d);
            }
        }
        self.g.dag.set_yielded(node);
        self.size -= 1;
        if self.heads.is_empty() {
            // a single writer's DAG can drain at once
            self.initial_heads.push(self.g.head_of(node));
        }
        node
    }

    fn remove_batch(&mut self, mut node: NodeId) -> Vec<NodeId> {
        let mut batch = vec![self.remove_node(node)];
        while self.g.nodes[node].batch != 1 {
            let n = &self.g.nodes[node];
            let want = n.batch - 1;
            if self.g.dag.node(node).dependents.is_empty() {
                // a batch node nobody links to: link the writer's next one (JS auto-corrects the same way)
                if let Some(next) = self.g.get(n.writer, n.length) {
                    if self.g.nodes[next].batch == want {
                        self.g.dag.node_mut(node).dependents.push(next);
                    }
                }
            }
            // add_node only lets a writer's own next node link inside a batch, so this is its one dependent
            let next = self.g.dag.node(node).dependents.iter().copied().find(|&d| {
                self.g.nodes[d].writer == self.g.nodes[node].writer
                    && self.g.nodes[d].length == self.g.nodes[node].length + 1
            });
            let Some(next) = next else { break };
            node = next;
            batch.push(self.remove_node(node));
        }
        batch
    }

    /// Shifts the writer's oldest indexed batch off its buffer (JS `writer.shift()`, which the apply calls for
    /// every indexed node that ends a batch); returns whether there was one. A node not indexed yet is not
    /// shifted (JS does not check; its apply never asks).
    pub fn shift_writer(&mut self, key: &[u8; 32]) -> bool {
        let Some(&w) = self.by_key.get(key) else {
            return false;
        };
        loop {
            let wr = &mut self.g.writers[w];
            match wr.nodes.front() {
                Some(&n) if self.g.dag.node(n).yielded => {}
                _ => return false,
            }
            let Some(n) = wr.nodes.pop_front() else {
                return false;
            };
            wr.offset += 1;
            // JS clears the node (clock, dependents): nothing reads them again
            self.g.nodes[n].clock = Clock::new();
            if self.g.nodes[n].batch <= 1 {
                return true;
            }
        }
    }

    /// The node with the removed, non-indexer writers' nodes it depends on through them, the node first (JS
    /// `node.causalDependencies()`; the apply links these into the system's heads).
    pub fn causal_dependencies(&self, node: NodeId) -> Vec<NodeId> {
        let mut order = vec![node];
        let mut stack = vec![node];
        let mut visited: HashSet<NodeId> = HashSet::new();
        while let Some(n) = stack.pop() {
            for &dep in &self.g.dag.node(n).dependencies {
                let w = &self.g.writers[self.g.nodes[dep].writer];
                if !w.is_removed || w.is_active_indexer || !visited.insert(dep) {
                    continue;
                }
                stack.push(dep);
                order.push(dep);
            }
        }
        order
    }

    /// Whether the indexer `key` should append an ack now (JS `linearizer.shouldAck(writer, pending)`;
    /// `pending`: indexers are being added). Assumes every added writer's complete batches are in the DAG.
    pub fn should_ack(&self, key: &[u8; 32], pending: bool) -> bool {
        let Some(&w) = self.by_key.get(key) else {
            return false;
        };
        if !self.g.writers[w].is_active_indexer {
            return false;
        }
        let mut is_head = false;
        for &h in &self.heads {
            let hw = self.g.nodes[h].writer;
            if !self.g.writers[hw].is_active_indexer {
                return true;
            }
            if hw == w {
                is_head = true;
            }
        }
        if self.heads.len() == 1 && is_head {
            return false; // never self-ack
        }
        let mut visited = HashSet::new();
        let value_check = self
            .tails
            .iter()
            .any(|&t| pending || self.non_null(t, &mut visited));
        if !value_check {
            return false;
        }
        if self.consensus.should_ack(&self.g, w) {
            return true;
        }
        self.should_ack_heads(w, pending)
    }

    fn non_null(&self, target: NodeId, visited: &mut HashSet<NodeId>) -> bool {
        let mut stack = vec![target];
        while let Some(n) = stack.pop() {
            if visited.contains(&n) {
                continue;
            }
            if self.g.nodes[n].value.is_some() {
                return true;
            }
            visited.insert(n);
            stack.extend_from_slice(&self.g.dag.node(n).dependents);
        }
        false
    }

    fn should_ack_heads(&self, w: WriterId, pending: bool) -> bool {
        let prev = self.g.head(w);
        for &head in &self.heads {
            if self.g.nodes[head].writer == w {
                continue;
            }
            let mut stack = vec![head];
            let mut visited = HashSet::new();
            while let Some(n) = stack.pop() {
                if !visited.insert(n) {
                    continue;
                }
                if pending || self.g.nodes[n].value.is_some() {
                    let acks = self.consensus.acks_from_node(&self.g, n, Some(head));
                    let prev_acks = self.consensus.acks_from_node(&self.g, n, prev);
                    if acks.len() > prev_acks.len() || acks.iter().any(|a| !prev_acks.contains(a)) {
                        return true;
                    }
                    if !prev_acks.is_empty() && !acks.is_empty() {
                        continue;
                    }
                }
                stack.extend_from_slice(&self.g.dag.node(n).dependencies);
            }
        }
        false
    }
}

fn same_dep(a: &Dep, b: &Dep) -> bool {
    match (a, b) {
        (Dep::Node(x), Dep::Node(y)) => x == y,
        (Dep::Pending(x), Dep::Pending(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k(b: u8) -> [u8; 32] {
        [b; 32]
    }

    fn h(b: u8, length: u64) -> Head {
        Head { key: k(b), length }
    }

    fn node(b: u8, length: u64, heads: &[Head], batch: u64, value: Option<&[u8]>) -> NodeInput {
        NodeInput {
            key: k(b),
            length,
            heads: heads.to_vec(),
            batch,
            value: value.map(<[u8]>::to_vec),
            optimistic: false,
        }
    }

    #[test]
    fn a_single_indexer_indexes_its_nodes_at_once() {
        let mut lin = Linearizer::new(&[h(1, 0)], &[]);
        lin.add_writer(k(2), 0, false);
        let w1 = lin.add_node(node(2, 1, &[], 1, Some(b"w"))).unwrap();
        let u = lin.update().unwrap();
        assert!(u.indexed.is_empty());
        assert_eq!(u.tip, w1);
        let a = lin.add_node(node(1, 1, &[h(2, 1)], 1, Some(b"a"))).unwrap();
        let u = lin.update().unwrap();
        // the indexer's node and what it links to are indexed, in order
        assert_eq!(u.indexed, vec![w1[0], a[0]]);
        assert!(u.tip.is_empty());
        assert_eq!((u.shared, u.undo, u.length), (1, 0, 2));
        assert!(lin.update().is_none(), "nothing new, no update");
        assert!(lin.shift_writer(&k(2)) && lin.shift_writer(&k(1)));
        assert_eq!(lin.writer(lin.writer_id(&k(1)).unwrap()).indexed(), 1);
        assert_eq!(lin.heads(), vec![h(1, 1)]);
        // a head naming a shifted node is dropped, as JS does
        let b = lin.add_node(node(2, 2, &[h(1, 1)], 1, Some(b"b"))).unwrap();
        assert!(lin.node(b[0]).heads.is_empty());
        assert_eq!(lin.node(b[0]).actual_heads, vec![h(1, 1)]);
    }

    #[test]
    fn batches_join_the_dag_whole() {
        let mut lin = Linearizer::new(&[h(1, 0)], &[]);
        assert!(lin
            .add_node(node(1, 1, &[], 3, Some(b"x")))
            .unwrap()
            .is_empty());
        assert!(lin
            .add_node(node(1, 2, &[h(1, 1)], 2, Some(b"y")))
            .unwrap()
            .is_empty());
        let added = lin.add_node(node(1, 3, &[h(1, 2)], 1, Some(b"z"))).unwrap();
        assert_eq!(added.len(), 3);
        let u = lin.update().unwrap();
        assert_eq!(u.indexed, added);
        assert!(lin.shift_writer(&k(1)));
        assert_eq!(lin.writer(0).indexed(), 3);
        assert!(!lin.shift_writer(&k(1)));
    }

    #[test]
    fn hostile_nodes_are_refused() {
        let mut lin = Linearizer::new(&[h(1, 0)], &[]);
        lin.add_writer(k(2), 0, false);
        lin.add_node(node(1, 1, &[], 1, Some(b"a"))).unwrap();
        let bad = [
            (node(9, 1, &[], 1, None), "unknown writer"),
            (node(2, 2, &[], 1, None), "seq gap"),
            (node(2, 0, &[], 1, None), "length 0"),
            (node(2, 1, &[h(1, 2)], 1, None), "head not added yet"),
            (node(2, 1, &[h(7, 1)], 1, None), "head of an unknown writer"),
            (node(2, 1, &[h(1, 0)], 1, None), "head of length 0"),
            (node(2, 1, &[h(2, 1)], 1, None), "head naming itself"),
            (node(1, 2, &[h(1, 5)], 1, None), "head naming a later node"),
            (node(2, 1, &[h(1, 1), h(1, 1)], 1, None), "duplicate head"),
            (node(2, 1, &[], 0, None), "batch 0"),
        ];
        for (input, what) in bad {
            assert!(lin.add_node(input).is_err(), "{what}");
        }
        // a batch must count down by one
        lin.add_node(node(2, 1, &[], 3, Some(b"b"))).unwrap();
        assert!(matches!(
            lin.add_node(node(2, 2, &[], 3, Some(b"b"))),
            Err(LinearizerError::BadBatch { .. })
        ));
        lin.add_node(node(2, 2, &[], 2, Some(b"b"))).unwrap();
        // another writer cannot link inside the unfinished batch (it is not in the DAG yet)
        assert!(matches!(
            lin.add_node(node(1, 2, &[h(2, 1)], 1, None)),
            Err(LinearizerError::MissingHead(_))
        ));
        lin.add_node(node(2, 3, &[], 1, Some(b"b"))).unwrap();
        // nor inside the finished one
        assert!(matches!(
            lin.add_node(node(1, 2, &[h(2, 1)], 1, None)),
            Err(LinearizerError::HeadInsideBatch(_))
        ));
        // refused nodes left nothing behind
        lin.add_node(node(1, 2, &[h(2, 3)], 1, None)).unwrap();
        assert_eq!(lin.size(), 5);
        assert!(lin.update().is_some());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add {
            writer: u8,
            /// Added to the writer's next length.
            skew: i64,
            heads: Vec<(u8, u64)>,
            batch: u64,
            value: bool,
            optimistic: bool,
        },
        Update,
        Shift(u8),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..4, prop_oneof![8 => Just(0i64), 1 => Just(-1), 1 => Just(1)],
                proptest::collection::vec((0u8..5, 0u64..6), 0..4),
                prop_oneof![6 => Just(1u64), 1 => 0u64..4], any::<bool>(), any::<bool>())
                .prop_map(|(writer, skew, heads, batch, value, optimistic)| Op::Add {
                    writer, skew, heads, batch, value, optimistic
                }),
            2 => Just(Op::Update),
            1 => (0u8..5).prop_map(Op::Shift),
            1 => (0u8..5).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Any sequence of nodes, valid or not, updates and shifts: no panic, refused nodes change nothing
        /// the next update shows, and every node in the DAG is reported exactly once across the indexed
        /// lists and the final tip.
        #[test]
        fn arbitrary_input_never_panics(
            indexers in 1usize..4,
            ops in proptest::collection::vec(op(), 0..80),
        ) {
            let idx: Vec<Head> = (0..indexers as u8).map(|i| h(i, 0)).collect();
            let mut lin = Linearizer::new(&idx, &[]);
            for i in 0..4 {
                lin.add_writer(k(i), 0, false);
            }
            let mut added = Vec::new();
            let mut indexed = Vec::new();
            let mut next = [1u64; 4];
            for op in ops {
                match op {
                    Op::Add { writer, skew, heads, batch, value, optimistic } => {
                        let length = next[writer as usize].saturating_add_signed(skew);
                        let input = NodeInput {
                            key: k(writer),
                            length,
                            heads: heads.iter().map(|&(w, l)| h(w, l)).collect(),
                            batch,
                            value: value.then(|| vec![writer]),
                            optimistic,
                        };
                        if let Ok(ids) = lin.add_node(input) {
                            next[writer as usize] = length + 1;
                            added.extend(ids);
                        }
                    }
                    Op::Update => {
                        if let Some(u) = lin.update() {
                            prop_assert_eq!(u.length, u.indexed.len() + u.tip.len());
                            indexed.extend(u.indexed);
                        }
                    }
                    Op::Shift(w) => {
                        lin.shift_writer(&k(w));
                    }
                    Op::Remove(w) => lin.set_removed(&k(w), true),
                }
                let _ = lin.should_ack(&k(0), false);
                let _ = lin.heads();
            }
            if let Some(u) = lin.update() {
                indexed.extend(u.indexed);
            }
            let mut all: Vec<NodeId> = indexed.iter().chain(lin.tip()).copied().collect();
            all.sort_unstable();
            added.sort_unstable();
            prop_assert_eq!(all, added);
            prop_assert_eq!(lin.size(), lin.tip().len());
        }
    }
}
