//! K-way merge of series with identical label sets from different backends.

use super::Sample;

/// Merges sample iterators in time order; a timestamp present in several inputs is emitted
/// once, with the value of the first input (in argument order) that has it.
///
/// The number of inputs is small (one per backend holding the series), so the heads are
/// scanned linearly instead of kept in a heap.
pub struct SeriesMerge<I> {
    inputs: Vec<I>,
    heads: Vec<Option<Sample>>,
}

impl<I: Iterator<Item = Sample>> SeriesMerge<I> {
    pub fn new(inputs: impl IntoIterator<Item = I>) -> Self {
        let mut inputs: Vec<I> = inputs.into_iter().collect();
        let heads = inputs.iter_mut().map(Iterator::next).collect();
        Self { inputs, heads }
    }
}

impl<I: Iterator<Item = Sample>> Iterator for SeriesMerge<I> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        let mut best: Option<(usize, Sample)> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if let Some(s) = *head {
                if best.is_none_or(|(_, b)| s.0 < b.0) {
                    best = Some((i, s));
                }
            }
        }
        let (_, sample) = best?;
        // Advance every input sitting on this timestamp so it is emitted once.
        for (head, input) in self.heads.iter_mut().zip(self.inputs.iter_mut()) {
            while head.is_some_and(|s| s.0 <= sample.0) {
                *head = input.next();
            }
        }
        Some(sample)
    }
}
