//! Variable-length sequences packed for the GRU, like `pack_padded_sequence` but sharing prefixes:
//! a prefix trie whose nodes are grouped by depth (time step). Every node is one GRU step
//! computed once, forward and backward; a sequence's hidden state is read at its own last node, so
//! padding never enters it. With `share = false` every sequence gets its own chain of nodes, which
//! is exactly PyTorch's packed layout (sequences sorted longest first).

/// Marks "no parent" (a node at depth 0, whose previous hidden state is h0 = 0).
pub const NO_PARENT: u32 = u32::MAX;

/// A set of sequences as a prefix forest, nodes ordered by depth.
#[derive(Clone, Debug, Default)]
pub struct SeqForest {
    /// The distinct input ids, sorted; node items index into this list.
    pub uniq: Vec<u32>,
    /// Per node: index into `uniq` of its item.
    pub items: Vec<u32>,
    /// Per node: its parent node (depth one less), or [`NO_PARENT`] at depth 0.
    pub parents: Vec<u32>,
    /// Nodes of depth `t` are `level_start[t]..level_start[t + 1]`.
    pub level_start: Vec<usize>,
    /// Per sequence, in the input order: the node of its last item.
    pub ends: Vec<usize>,
    // Scratch reused between builds.
    order: Vec<u32>,
    path: Vec<u32>,
    tmp_item: Vec<u32>,
    tmp_parent: Vec<u32>,
    tmp_depth: Vec<u32>,
    tmp_end: Vec<u32>,
    rank: Vec<u32>,
}

impl SeqForest {
    /// Number of nodes (GRU steps).
    pub fn n_nodes(&self) -> usize {
        self.items.len()
    }

    /// Number of sequences.
    pub fn n_seqs(&self) -> usize {
        self.ends.len()
    }

    /// Number of levels (the longest sequence's length).
    pub fn n_levels(&self) -> usize {
        self.level_start.len().saturating_sub(1)
    }

    /// The node range of depth `t`.
    pub fn level(&self, t: usize) -> std::ops::Range<usize> {
        self.level_start[t]..self.level_start[t + 1]
    }

    /// Builds the forest of sequences `i = 0..offsets.len() - 1`, sequence `i` being
    /// `flat[offsets[i]..offsets[i + 1]]`. Every sequence must be non-empty (callers validate).
    /// `share` merges common prefixes into one chain of nodes. Reuses its buffers.
    pub fn build(&mut self, flat: &[u32], offsets: &[usize], share: bool) {
        let n = offsets.len().saturating_sub(1);
        let seq = |i: u32| &flat[offsets[i as usize]..offsets[i as usize + 1]];
        debug_assert!((0..n as u32).all(|i| !seq(i).is_empty()));

        self.uniq.clear();
        self.uniq.extend_from_slice(flat);
        self.uniq.sort_unstable();
        self.uniq.dedup();

        // Sequences in lexicographic order: a sequence shares with its predecessor exactly the
        // longest prefix it shares with any earlier one.
        self.order.clear();
        self.order.extend(0..n as u32);
        if share {
            self.order
                .sort_unstable_by(|&a, &b| seq(a).cmp(seq(b)).then(a.cmp(&b)));
        } else {
            self.order
                .sort_unstable_by(|&a, &b| seq(b).len().cmp(&seq(a).len()).then(a.cmp(&b)));
        }
        self.path.clear();
        self.tmp_item.clear();
        self.tmp_parent.clear();
        self.tmp_depth.clear();
        self.tmp_end.clear();
        self.tmp_end.resize(n, 0);
        let mut prev: Option<u32> = None;
        for oi in 0..n {
            let s = self.order[oi];
            let cur = seq(s);
            let shared = match (share, prev) {
                (true, Some(p)) => seq(p).iter().zip(cur).take_while(|(a, b)| a == b).count(),
                _ => 0,
            };
            self.path.truncate(shared);
            for (d, &id) in cur.iter().enumerate().skip(shared) {
                let node = self.tmp_item.len() as u32;
                let item = self.uniq.binary_search(&id).unwrap_or(0) as u32;
                self.tmp_item.push(item);
                self.tmp_parent
                    .push(if d == 0 { NO_PARENT } else { self.path[d - 1] });
                self.tmp_depth.push(d as u32);
                self.path.push(node);
            }
            self.tmp_end[s as usize] = self.path[cur.len() - 1];
            prev = Some(s);
        }
        self.sort_by_depth();
    }

    /// Counting sort of the temporary nodes by depth (stable: creation order inside a level).
    fn sort_by_depth(&mut self) {
        let levels = self
            .tmp_depth
            .iter()
            .map(|&d| d as usize + 1)
            .max()
            .unwrap_or(0);
        self.level_start.clear();
        self.level_start.resize(levels + 1, 0);
        for &d in &self.tmp_depth {
            self.level_start[d as usize + 1] += 1;
        }
        for t in 0..levels {
            self.level_start[t + 1] += self.level_start[t];
        }
        let m = self.tmp_item.len();
        self.rank.clear();
        self.rank.resize(m, 0);
        // `path` is free now: use it as the next free slot per level.
        self.path.clear();
        self.path
            .extend(self.level_start[..levels].iter().map(|&s| s as u32));
        for node in 0..m {
            let d = self.tmp_depth[node] as usize;
            self.rank[node] = self.path[d];
            self.path[d] += 1;
        }
        self.items.clear();
        self.items.resize(m, 0);
        self.parents.clear();
        self.parents.resize(m, NO_PARENT);
        for node in 0..m {
            let r = self.rank[node] as usize;
            self.items[r] = self.tmp_item[node];
            let p = self.tmp_parent[node];
            self.parents[r] = if p == NO_PARENT {
                NO_PARENT
            } else {
                self.rank[p as usize]
            };
        }
        self.ends.clear();
        self.ends
            .extend(self.tmp_end.iter().map(|&e| self.rank[e as usize] as usize));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(seqs: &[&[u32]]) -> (Vec<u32>, Vec<usize>) {
        let mut f = Vec::new();
        let mut o = vec![0];
        for s in seqs {
            f.extend_from_slice(s);
            o.push(f.len());
        }
        (f, o)
    }

    /// Walks back from each sequence's end node and checks that it spells the sequence.
    fn spells(forest: &SeqForest, seqs: &[&[u32]]) {
        for (i, s) in seqs.iter().enumerate() {
            let mut node = forest.ends[i] as u32;
            let mut back = Vec::new();
            while node != NO_PARENT {
                back.push(forest.uniq[forest.items[node as usize] as usize]);
                let p = forest.parents[node as usize];
                if p != NO_PARENT {
                    assert!(forest.level(0).end <= node as usize || p == NO_PARENT);
                    assert!(p < node, "parents come before children");
                }
                node = p;
            }
            back.reverse();
            assert_eq!(&back[..], *s);
            assert!(forest.level(s.len() - 1).contains(&forest.ends[i]));
        }
    }

    #[test]
    fn shared_prefixes_are_computed_once() {
        let seqs: [&[u32]; 5] = [&[5, 6, 7], &[5, 6], &[9], &[5, 6, 7, 8], &[5, 6]];
        let (f, o) = flat(&seqs);
        let mut forest = SeqForest::default();
        forest.build(&f, &o, true);
        assert_eq!(forest.n_nodes(), 5); // 5,6,7,8 and 9
        assert_eq!(forest.n_levels(), 4);
        assert_eq!(forest.ends[1], forest.ends[4]);
        spells(&forest, &seqs);
        forest.build(&f, &o, false);
        assert_eq!(forest.n_nodes(), 3 + 2 + 1 + 4 + 2);
        assert_eq!(forest.level(0).len(), 5);
        assert_eq!(forest.level(3).len(), 1);
        spells(&forest, &seqs);
    }
}
