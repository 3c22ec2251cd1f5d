//! Which nodes of the causal DAG are indexed (confirmed by the indexers), JS autobase 7.28.1 `lib/consensus.js`,
//! sans-IO.
//!
//! Only the indexers' nodes count. Every node carries a vector [`Clock`] of the indexers' lengths it has
//! seen. An indexer node `A` is **acked** by another indexer when that indexer's next node after what `A` had
//! seen sees `A` and is *strictly newer* than it (every indexer node it saw either sees `A` or came before
//! `A`'s view); an indexer **confirms** `A` when one of its nodes is strictly newer than `A` and sees a majority
//! of those acks. A node is indexed once a majority (`indexers / 2 + 1`) of indexers confirm it, with a
//! majority of acks. Each `Consensus::shift` yields the next indexed node among the indexers' oldest
//! un-indexed nodes (the *tails*); when none is confirmed but a *merge* node (an indexer node that saw several
//! concurrent indexer tails) is, it walks down from the merge to the fork that is confirmed under it, or yields
//! all the tails the merge saw at once. The [`Linearizer`](super::linearizer::Linearizer) turns each yield into
//! the causal closure of nodes it indexes.

use super::clock::{Clock, WriterId};
use super::linearizer::Graph;
use super::topolist::NodeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirm {
    Unseen,
    Newer,
    Acked,
}

/// The consensus state of a linearizer.
#[derive(Debug, Clone)]
pub struct Consensus {
    merges: Vec<NodeId>,
    majority: usize,
    indexers: Vec<WriterId>,
    /// The last indexed length of every writer.
    pub(crate) removed: Clock,
    updated: bool,
}

impl Consensus {
    /// A consensus among `indexers` (in the system's order).
    pub fn new(indexers: Vec<WriterId>) -> Self {
        Self {
            merges: Vec::new(),
            majority: (indexers.len() >> 1) + 1,
            indexers,
            removed: Clock::new(),
            updated: false,
        }
    }

    /// The indexers, in order.
    pub fn indexers(&self) -> &[WriterId] {
        &self.indexers
    }

    /// How many indexers make a majority.
    pub fn majority(&self) -> usize {
        self.majority
    }

    fn is_indexer(&self, w: WriterId) -> bool {
        self.indexers.contains(&w)
    }

    /// A new node of an active indexer joined the DAG.
    pub(crate) fn add_head(&mut self, g: &Graph, node: NodeId) {
        if !g.writers[g.nodes[node].writer].is_active_indexer {
            return;
        }
        if self.is_merge(g, node) && !self.merges.contains(&node) {
            self.merges.push(node);
        }
        self.updated = true;
    }

    fn tails_of(&self, g: &Graph, node: NodeId, tails: &[NodeId]) -> Vec<NodeId> {
        tails.iter().copied().filter(|&t| g.sees(node, t)).collect()
    }

    fn tails_and_merges(&self, g: &Graph, node: NodeId, tails: &[NodeId]) -> Vec<NodeId> {
        let mut all = self.tails_of(g, node, tails);
        for &m in &self.merges {
            if m != node && g.sees(node, m) && !all.contains(&m) {
                all.push(m);
            }
        }
        all
    }

    fn removed_includes(&self, g: &Graph, node: NodeId) -> bool {
        let n = &g.nodes[node];
        self.removed.includes(n.writer, n.length)
    }

    fn is_merge(&self, g: &Graph, node: NodeId) -> bool {
        let n = &g.nodes[node];
        if !g.writers[n.writer].is_active_indexer {
            return false;
        }
        let mut deps: Vec<NodeId> = Vec::new();
        for &idx in &self.indexers {
            let mut seq = n.clock.get(idx) as i128 - 1;
            if idx == n.writer {
                seq -= 1;
            }
            let Some(head) = g.get_signed(idx, seq) else {
                continue;
            };
            if self.removed_includes(g, head) {
                continue;
            }
            let mut is_dep = true;
            let mut i = 0;
            while i < deps.len() {
                let d = deps[i];
                if d == head {
                    i += 1;
                    continue;
                }
                if g.sees(d, head) {
                    is_dep = false;
                    break;
                }
                if g.sees(head, d) {
                    let popped = deps.pop();
                    if popped == Some(d) {
                        i += 1;
                        continue;
                    }
                    if let Some(p) = popped {
                        deps[i] = p;
                    }
                    continue;
                }
                i += 1;
            }
            if is_dep {
                deps.push(head);
            }
        }
        deps.len() > 1
    }

    fn indexer_tails(&self, g: &Graph) -> Vec<NodeId> {
        let mut tails: Vec<NodeId> = Vec::new();
        for &idx in &self.indexers {
            let length = if self.removed.has(idx) {
                self.removed.get(idx)
            } else {
                g.writers[idx].indexed()
            };
            let Some(head) = g.get(idx, length) else {
                continue;
            };
            if self.removed_includes(g, head) {
                continue;
            }
            let mut is_tail = true;
            let mut j = 0;
            while j < tails.len() {
                let t = tails[j];
                if g.sees(head, t) {
                    is_tail = false;
                    break;
                }
                if g.sees(t, head) {
                    tails.remove(j);
                    continue;
                }
                j += 1;
            }
            if is_tail && !tails.contains(&head) {
                tails.push(head);
            }
        }
        tails
    }

    /// Whether `parent` is strictly newer than `object`: it sees `object`, and every indexer node it saw either
    /// sees `object` or was not seen by it.
    fn strictly_newer(&self, g: &Graph, object: NodeId, parent: NodeId) -> bool {
        if !g.sees(parent, object) {
            return false;
        }
        let (o, p) = (&g.nodes[object], &g.nodes[parent]);
        for (key, latest) in p.clock.iter() {
            let oldest = self.removed.get(key);
            if latest <= oldest {
                continue;
            }
            let mut length = o.clock.get(key);
            if length <= oldest {
                length = oldest;
            }
            if latest < length {
                return false;
            }
            if latest == length {
                continue;
            }
            if !self.is_indexer(key) {
                continue;
            }
            let indexed = g.writers[key].indexed();
            let Some(next) = g.get(key, length.max(indexed)) else {
                continue;
            };
            if g.sees(next, object) {
                continue;
            }
            if latest < g.nodes[next].length {
                continue;
            }
            return false;
        }
        true
    }

    fn acks(&self, g: &Graph, target: NodeId) -> Vec<NodeId> {
        let t = &g.nodes[target];
        let mut acks = if g.writers[t.writer].is_active_indexer {
            vec![target]
        } else {
            Vec::new()
        };
        for &idx in &self.indexers {
            if idx == t.writer {
                continue;
            }
            let next = t.clock.get(idx).max(g.writers[idx].indexed());
            let Some(nin) = g.get(idx, next) else {
                continue;
            };
            if !g.sees(nin, target) || !self.strictly_newer(g, target, nin) {
                continue;
            }
            acks.push(nin);
        }
        acks
    }

    /// The indexers whose acks of `target` the node `view` has seen.
    pub(crate) fn acks_from_node(
        &self,
        g: &Graph,
        target: NodeId,
        view: Option<NodeId>,
    ) -> Vec<WriterId> {
        let mut acks = Vec::new();
        let Some(view) = view else {
            return acks;
        };
        if !g.sees(view, target) {
            return acks;
        }
        let vw = g.nodes[view].writer;
        acks.push(vw);
        for &idx in &self.indexers {
            if idx == vw {
                continue;
            }
            let length = g.nodes[view].clock.get(idx);
            if length == 0 || g.nodes[target].clock.includes(idx, length) {
                continue;
            }
            let Some(head) = g.get(idx, length - 1) else {
                continue;
            };
            if g.sees(head, target) && !acks.contains(&idx) {
                acks.push(idx);
            }
        }
        acks
    }

    fn acked_at(&self, g: &Graph, acks: &[NodeId], parent: NodeId) -> bool {
        let mut seen = 0;
        let mut missing = acks.len();
        for &node in acks {
            missing -= 1;
            if !g.sees(parent, node) {
                if seen + missing < self.majority {
                    return false;
                }
                continue;
            }
            seen += 1;
            if seen >= self.majority {
                return true;
            }
        }
        false
    }

    fn confirms(
        &self,
        g: &Graph,
        indexer: WriterId,
        target: NodeId,
        acks: &[NodeId],
        length: u64,
    ) -> Confirm {
        if length == 0 || self.removed.get(indexer) >= length {
            return Confirm::Unseen;
        }
        let mut jump = true;
        let mut newer = true;
        let mut i = length as i128 - 1;
        while i >= 0 {
            let Some(head) = g.get_signed(indexer, i) else {
                return Confirm::Unseen;
            };
            let mut seen = 0;
            for &node in acks {
                if !g.sees(head, node) {
                    continue;
                }
                seen += 1;
                if seen >= self.majority {
                    break;
                }
            }
            if !newer && seen < self.majority {
                break;
            }
            if !self.strictly_newer(g, target, head) {
                // the strictly newer nodes are clustered together: bisect to the cluster
                if jump {
                    jump = false;
                    let mut t = length as i128 - 1;
                    let mut b: i128 = 0;
                    while t > b {
                        let mid = (t + b) >> 1;
                        let go_up = match g.get_signed(indexer, mid) {
                            None => true,
                            Some(node) => {
                                !g.sees(node, target) || self.strictly_newer(g, target, node)
                            }
                        };
                        if go_up {
                            b = mid + 1;
                        } else {
                            t = mid - 1;
                        }
                    }
                    if b + 1 < i {
                        i = b + 2;
                    }
                }
                newer = false;
                i -= 1;
                continue;
            } else if seen < self.majority {
                return Confirm::Newer;
            }
            return Confirm::Acked;
        }
        Confirm::Unseen
    }

    fn is_confirmed(&self, g: &Graph, target: NodeId, parent: Option<NodeId>) -> bool {
        let acks = self.acks(g, target);
        if acks.len() < self.majority {
            return false;
        }
        let mut confs: Vec<WriterId> = Vec::new();
        let mut all_newer = true;
        for &indexer in &self.indexers {
            let length = match parent {
                Some(p) if g.nodes[p].writer == indexer => g.nodes[p].length.saturating_sub(1),
                Some(p) => g.nodes[p].clock.get(indexer),
                None => g.writers[indexer].length(),
            };
            let result = self.confirms(g, indexer, target, &acks, length);
            if result == Confirm::Acked {
                confs.push(indexer);
                if confs.len() >= self.majority {
                    return true;
                }
            }
            if result == Confirm::Unseen {
                all_newer = false;
            }
        }
        match parent {
            Some(p) => self.is_confirmable_at(g, target, p, &acks, &confs),
            None => all_newer,
        }
    }

    fn is_confirmable_at(
        &self,
        g: &Graph,
        target: NodeId,
        parent: NodeId,
        acks: &[NodeId],
        confs: &[WriterId],
    ) -> bool {
        if !self.acked_at(g, acks, parent) {
            return false;
        }
        let mut potential = confs.len();
        for &indexer in &self.indexers {
            if confs.contains(&indexer) {
                continue;
            }
            let length = g.nodes[parent].clock.get(indexer);
            let is_seen = g.nodes[target].clock.includes(indexer, length);
            if !is_seen {
                let head = g.get_signed(indexer, length as i128 - 1);
                if let Some(head) = head {
                    if !self.removed_includes(g, head) && !self.strictly_newer(g, target, head) {
                        continue;
                    }
                }
            }
            potential += 1;
            if potential >= self.majority {
                return true;
            }
        }
        false
    }

    /// Marks `node` indexed.
    pub(crate) fn remove(&mut self, g: &Graph, node: NodeId) -> NodeId {
        self.merges.retain(|&m| m != node);
        let n = &g.nodes[node];
        self.removed.set(n.writer, n.length);
        node
    }

    /// The next indexed nodes the linearizer must yield (with everything they depend on), or none.
    pub(crate) fn shift(&mut self, g: &Graph) -> Vec<NodeId> {
        if !self.updated {
            return Vec::new();
        }
        let tails = self.indexer_tails(g);
        for &tail in &tails {
            if self.is_confirmed(g, tail, None) {
                return vec![self.remove(g, tail)];
            }
        }
        let merges = self.merges.clone();
        for merge in merges {
            if self.is_confirmed(g, merge, None) {
                return self.yield_next(g, merge, &tails);
            }
        }
        self.updated = false;
        Vec::new()
    }

    fn yield_next(&mut self, g: &Graph, mut node: NodeId, tails: &[NodeId]) -> Vec<NodeId> {
        while !tails.contains(&node) {
            let next = self
                .tails_and_merges(g, node, tails)
                .into_iter()
                .find(|&t| self.is_confirmed(g, t, Some(node)));
            if let Some(next) = next {
                node = next;
                continue;
            }
            let all = self.tails_of(g, node, tails);
            return all.into_iter().map(|t| self.remove(g, t)).collect();
        }
        vec![self.remove(g, node)]
    }

    /// Whether the indexer `writer` acking now would help confirm one of the indexers' tails.
    pub(crate) fn should_ack(&self, g: &Graph, writer: WriterId) -> bool {
        self.indexer_tails(g)
            .into_iter()
            .any(|t| g.nodes[t].writer != writer && self.should_ack_node(g, t, writer))
    }

    fn should_ack_node(&self, g: &Graph, target: NodeId, writer: WriterId) -> bool {
        let w = &g.writers[writer];
        let next = g.nodes[target].clock.get(writer).max(w.indexed());
        let nin = g.get(writer, next);
        if nin.is_none() && writer != g.nodes[target].writer {
            return true;
        }
        if let Some(nin) = nin {
            if !g.sees(nin, target) {
                return match g.head(writer) {
                    Some(head) => !g.sees(head, target),
                    None => true,
                };
            }
            if !self.strictly_newer(g, target, nin) {
                return false;
            }
        }
        let acks = self.acks(g, target);
        if acks.len() >= self.majority {
            return self.confirms(g, writer, target, &acks, w.length()) == Confirm::Unseen;
        }
        false
    }
}
