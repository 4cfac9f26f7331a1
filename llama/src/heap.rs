//! The process heap policy for CPU tensor work.
//!
//! burn's CPU backend (flex) allocates a fresh buffer for every tensor it produces, megabytes to
//! hundreds of megabytes each, and frees them again within the step. glibc's `malloc` serves
//! such sizes from `mmap` (above its dynamic threshold, at most 32 MiB) or from the heap top,
//! which it trims back to the kernel once more than twice that is free. Either way the next
//! step's buffers come back as fresh pages that the kernel faults in and zeroes: a quarter of a
//! LoRA training step on SmolLM2-135M was `clear_page` and page-fault handling (perf,
//! `tools/bench/RESULTS.md`). [`retain_freed_memory`] makes glibc keep freed memory for reuse,
//! as PyTorch's and burn's GPU backends do with their caching allocators.

/// What [`retain_freed_memory`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapPolicy {
    /// glibc now serves allocations below 2 GiB from its heap and keeps freed memory there.
    Retained,
    /// Not glibc (musl, macOS, Windows, wasm): the allocator's own policy is unchanged.
    Unchanged,
}

/// Keeps freed memory in the process heap, through three `mallopt(3)` settings:
/// - `M_MMAP_THRESHOLD` at `i32::MAX` bytes: allocations below 2 GiB come from the heap;
/// - `M_TRIM_THRESHOLD` at −1, which `mallopt(3)` documents as "disables trimming
///   completely": freed memory is never returned to the kernel (a 2 GiB threshold is not
///   enough: a LoRA step frees more than that at once);
/// - `M_ARENA_MAX` at 1: every thread allocates from the main heap. A thread's own arena grows
///   in mappings of at most 64 MiB, so a larger buffer allocated on a worker thread would be
///   mapped and unmapped again whatever the thresholds.
///
/// Call it once, first thing in a program that trains or runs a model on the CPU, before other
/// threads start (a thread keeps the arena it first allocated from). It affects the whole
/// process.
///
/// The heap then stays at its high-water mark: peak RSS is unchanged, but memory is not given
/// back between stages. On a 2-core AMD EPYC it took a LoRA step (batch 8 × 256) from 4.8 M to
/// 2.0 M page faults for 4 steps (almost all of them now in the first step) and from 182 to
/// 227 tok/s, at the same peak RSS (`tools/bench/RESULTS.md`). Setting only the trim
/// threshold (`GLIBC_TUNABLES`) is worse than nothing: it also freezes the `mmap` threshold at
/// 128 KiB.
///
/// Returns [`HeapPolicy::Unchanged`] on other allocators, or if glibc refused a setting.
pub fn retain_freed_memory() -> HeapPolicy {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes malloc's tuning parameters, under malloc's own lock.
        let set = |param, value| unsafe { libc::mallopt(param, value) } == 1;
        if set(libc::M_MMAP_THRESHOLD, i32::MAX)
            && set(libc::M_TRIM_THRESHOLD, -1)
            && set(libc::M_ARENA_MAX, 1)
        {
            return HeapPolicy::Retained;
        }
    }
    HeapPolicy::Unchanged
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40 MiB buffer is above glibc's largest dynamic `mmap` threshold (32 MiB), so by
    /// default it is mapped on allocation and unmapped on free. With memory retained it comes
    /// from the heap (glibc's count of mapped bytes does not grow) and stays there, free, after
    /// it is dropped. (The test thread has its own arena, whose heaps hold up to 64 MiB.)
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_freed_large_buffer_stays_in_the_heap() {
        assert_eq!(retain_freed_memory(), HeapPolicy::Retained);
        // SAFETY: `mallinfo2` only reads malloc's statistics.
        let info = || unsafe { libc::mallinfo2() };
        let len = 40 << 20;
        let mapped_before = info().hblkhd;
        let buffer = vec![1u8; len];
        assert!(
            info().hblkhd < mapped_before + len,
            "the buffer was mapped, not taken from the heap"
        );
        drop(std::hint::black_box(buffer));
        assert!(
            info().fordblks >= len,
            "the freed buffer was returned to the kernel"
        );
    }
}
