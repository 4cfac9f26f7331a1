//! Fixed tensor shapes for the GPU backends.
//!
//! burn's cubecl backends (CUDA, wgpu) compile a kernel, and autotune the matmuls, for every
//! new combination of shapes they meet; a batch padded only to its own longest example brings
//! new shapes almost every step, and the first steps of a stage on an H200 spent most of their
//! time compiling (`tools/bench/RESULTS.md`, "On a GPU"). With [`FixedShapes`] the tensors the
//! model sends to the backend come from a few buckets, so each kernel is compiled and tuned
//! once per bucket (and kept across runs: [`crate::device::use_kernel_cache`]):
//!
//! - training and evaluation batches ([`crate::train::collate_shaped`]) are padded to a width
//!   that is a multiple of `multiple` tokens, as HF's
//!   `DataCollatorWithPadding(pad_to_multiple_of=…)`, and to the batch size in rows;
//! - generation prompts are left-padded to such a width, and each decoding step attends over
//!   the KV cache's positions rounded up the same way (the unwritten ones masked), so the
//!   attention width changes once every `multiple` tokens instead of at every step. The
//!   number of rows still changes when continuous batching lets a finished row leave
//!   ([`crate::generate::generate_queued`]);
//! - the scored positions that reach the output head's loss are padded to a power of two (at
//!   least `multiple`) with zero rows, whose known loss ln V is taken off again.
//!
//! Padded positions are masked: they change no loss, gradient or generated token, only the
//! amount of work (`llama/tests/fixed_shapes.rs`). On the CPU (flex), whose kernels need no
//! compilation, the trainer pads nothing by default and its results stay byte for byte those
//! of unpadded batches.
//!
//! [`ShapeLog`] records, per thread, the distinct shapes the model's forward passes use; the
//! tests count them with it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// Bucketed shapes: widths rounded up to a multiple of `multiple` tokens (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedShapes {
    /// Granularity of sequence widths, in tokens (≥ 1; 1 pads widths to nothing, but still
    /// pads the scored rows).
    pub multiple: usize,
}

impl FixedShapes {
    /// What the trainer uses on a GPU: multiples of 64 tokens, the tile of cubecl's matmuls
    /// and of PyTorch's own padding advice for tensor cores.
    pub const GPU: FixedShapes = FixedShapes { multiple: 64 };

    /// The shapes a run uses from its `pad_to_multiple_of` setting: unset, [`FixedShapes::GPU`]
    /// on a GPU backend and exact shapes on the CPU (where padding is only extra work); 0,
    /// exact shapes; `m`, widths in multiples of `m`.
    pub fn for_run(pad_to_multiple_of: Option<usize>, gpu: bool) -> Option<FixedShapes> {
        match pad_to_multiple_of {
            None => gpu.then_some(Self::GPU),
            Some(0) => None,
            Some(multiple) => Some(FixedShapes { multiple }),
        }
    }

    /// `longest` rounded up to a multiple of `multiple` (0 stays 0).
    pub fn width(self, longest: usize) -> usize {
        longest.next_multiple_of(self.multiple.max(1))
    }

    /// The number of distinct widths sequences of at most `max_length` tokens are padded to.
    pub fn width_buckets(self, max_length: usize) -> usize {
        max_length.div_ceil(self.multiple.max(1))
    }

    /// The rows `n` scored positions are padded to: the next power of two, at least
    /// `multiple`. `n` itself when `n` is 0.
    pub fn scored_rows(self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        n.next_power_of_two().max(self.multiple)
    }

    /// The number of distinct values [`FixedShapes::scored_rows`] takes for `1..=max_rows`.
    pub fn scored_row_buckets(self, max_rows: usize) -> usize {
        let smallest = self.scored_rows(1);
        if max_rows <= smallest {
            return 1;
        }
        1 + (self.scored_rows(max_rows) / smallest).ilog2() as usize
    }
}

/// What a recorded shape is the shape of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShapeKind {
    /// A forward pass through the decoder: `[batch, new positions, attended positions]`
    /// (`new = attended` without a KV cache; attended positions include masked ones).
    Forward,
    /// The rows of final hidden states scored by the output head's loss: `[rows]`.
    ScoredRows,
}

thread_local! {
    static LOG: RefCell<Option<BTreeMap<ShapeKind, BTreeSet<Vec<usize>>>>> =
        const { RefCell::new(None) };
}

/// Records the distinct shapes [`crate::model::Llama`]'s forward passes and loss use on this
/// thread while it lives: the shapes the backend compiles kernels for. Recording costs one
/// thread-local look-up per forward pass; none happens while no log is open.
#[derive(Debug)]
pub struct ShapeLog {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl ShapeLog {
    /// Starts recording on this thread (forgetting what an earlier log recorded).
    pub fn start() -> Self {
        LOG.with(|log| *log.borrow_mut() = Some(BTreeMap::new()));
        Self {
            _not_send: std::marker::PhantomData,
        }
    }

    /// The distinct shapes of `kind` recorded so far.
    pub fn shapes(&self, kind: ShapeKind) -> BTreeSet<Vec<usize>> {
        LOG.with(|log| {
            log.borrow()
                .as_ref()
                .and_then(|log| log.get(&kind).cloned())
                .unwrap_or_default()
        })
    }
}

impl Drop for ShapeLog {
    fn drop(&mut self) {
        LOG.with(|log| *log.borrow_mut() = None);
    }
}

/// Notes `shape` of `kind` when a [`ShapeLog`] is open on this thread.
pub(crate) fn record(kind: ShapeKind, shape: &[usize]) {
    LOG.with(|log| {
        if let Some(log) = log.borrow_mut().as_mut() {
            log.entry(kind).or_default().insert(shape.to_vec());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_round_up_and_rows_go_to_powers_of_two() {
        let shapes = FixedShapes::GPU;
        assert_eq!(
            [1, 64, 65, 192, 193].map(|w| shapes.width(w)),
            [64, 64, 128, 192, 256]
        );
        assert_eq!(shapes.width_buckets(192), 3);
        assert_eq!(shapes.width_buckets(200), 4);
        assert_eq!(
            [0, 1, 64, 65, 300, 1024].map(|n| shapes.scored_rows(n)),
            [0, 64, 64, 128, 512, 1024]
        );
        // 64, 128, 256, 512, 1024 for up to 4 × 192 = 768 rows.
        assert_eq!(shapes.scored_row_buckets(768), 5);
        assert_eq!(shapes.scored_row_buckets(10), 1);
        let exact = FixedShapes { multiple: 1 };
        assert_eq!(exact.width(37), 37);
        assert_eq!(exact.scored_rows(37), 64);
    }

    #[test]
    fn a_run_pads_on_a_gpu_unless_told_otherwise() {
        assert_eq!(FixedShapes::for_run(None, true), Some(FixedShapes::GPU));
        assert_eq!(FixedShapes::for_run(None, false), None);
        assert_eq!(FixedShapes::for_run(Some(0), true), None);
        assert_eq!(
            FixedShapes::for_run(Some(16), false),
            Some(FixedShapes { multiple: 16 })
        );
    }

    #[test]
    fn the_log_records_only_while_open() {
        record(ShapeKind::Forward, &[1, 2, 3]);
        let log = ShapeLog::start();
        record(ShapeKind::Forward, &[4, 5, 5]);
        record(ShapeKind::Forward, &[4, 5, 5]);
        record(ShapeKind::ScoredRows, &[64]);
        assert_eq!(
            log.shapes(ShapeKind::Forward),
            BTreeSet::from([vec![4, 5, 5]])
        );
        assert_eq!(log.shapes(ShapeKind::ScoredRows).len(), 1);
        drop(log);
        record(ShapeKind::Forward, &[6, 6, 6]);
        assert!(ShapeLog::start().shapes(ShapeKind::Forward).is_empty());
    }
}
