//! Fuzzing of file readers on stable Rust, shared by the fuzz tests of every crate
//! (`llama/tests/fuzz_readers.rs`, `shared/tests/fuzz_artifacts.rs`, `trainer/tests/fuzz_data.rs`,
//! each including this file by path and installing [`Counting`] as its global allocator) and
//! by the studio's hostile drops (`e2e/tests/studio.rs`, which only uses [`mutated`]).
//!
//! A case is a real seed file, mutated by proptest ([`mutated`]): cut, bit-flipped, spliced
//! with another seed, given huge numbers (binary and decimal) and stray JSON tokens. [`fuzz`]
//! hands each case to a reader and checks the properties: no panic (proptest reports and
//! shrinks one); at most [`allocation_cap`] bytes live at once on the reading thread, counted
//! by this binary's global allocator ([`Counting`]); and an error that names the file. It
//! prints `fuzz READER: N cases` on the test's stderr (past the harness's capture). The
//! number of cases is `INSCL_FUZZ_CASES`, default [`DEFAULT_CASES`] (seconds in CI).

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Cases per reader without `INSCL_FUZZ_CASES`.
pub const DEFAULT_CASES: u32 = 200;

/// A request that would make one thread hold more than this fails at once (the process
/// aborts: "memory allocation of N bytes failed"), instead of taking the machine's memory.
const HARD_LIMIT: usize = 1 << 30;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// The global allocator of a fuzz test binary: the system allocator, counting the bytes that
/// each thread holds and the peak since [`peak_during`] started. Install it with
/// `#[global_allocator] static ALLOCATOR: fuzz::Counting = fuzz::Counting;`.
pub struct Counting;

fn grew(size: usize) -> bool {
    LIVE.try_with(|live| {
        let now = live.get() + size;
        if now > HARD_LIMIT {
            return false;
        }
        live.set(now);
        PEAK.with(|peak| peak.set(peak.get().max(now)));
        true
    })
    .unwrap_or(true)
}

fn shrank(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size)));
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only read sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !grew(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !grew(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            if !grew(new_size - layout.size()) {
                return std::ptr::null_mut();
            }
        } else {
            shrank(layout.size() - new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// `f`'s result and the most bytes the current thread held at once while it ran, beyond
/// what it held before.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    let result = f();
    (result, PEAK.with(Cell::get) - base)
}

/// What a reader may hold at once for a file of `len` bytes: a small multiple of it (the
/// text, its parse tree, f32 tensors from f16 data), plus 4 MiB for fixed costs.
pub fn allocation_cap(len: usize) -> usize {
    32 * len + (4 << 20)
}

/// The number of cases per reader.
pub fn cases() -> u32 {
    match std::env::var("INSCL_FUZZ_CASES") {
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("INSCL_FUZZ_CASES={n:?} is not a number of cases")),
        Err(_) => DEFAULT_CASES,
    }
}

/// One change to a seed.
#[derive(Debug, Clone)]
enum Mutation {
    /// Drop everything from here on.
    Cut(Index),
    /// Flip one bit.
    Flip(Index, u8),
    /// Replace `len` bytes from here with `len` bytes of another seed.
    Splice(Index, Index, Index, usize),
    /// Overwrite with a little-endian integer of `width` bytes (a count, length or offset).
    Number(Index, u64, usize),
    /// Insert a token (a huge or negative decimal number, stray JSON).
    Insert(Index, &'static [u8]),
}

/// Values that break counts, lengths and offsets.
const NUMBERS: [u64; 8] = [
    0,
    1,
    0x7f,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 40,
    u64::MAX,
];

/// Tokens that break text formats.
const TOKENS: [&[u8]; 12] = [
    b"99999999999999999999999",
    b"18446744073709551615",
    b"-1",
    b"1e999",
    b"null",
    b"[",
    b"{",
    b"\"",
    b",",
    b"\\u0000",
    b"\xff\xfe",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Cut),
        (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        (any::<Index>(), any::<Index>(), any::<Index>(), 1usize..256)
            .prop_map(|(at, seed, from, len)| Mutation::Splice(at, seed, from, len)),
        (
            any::<Index>(),
            prop::sample::select(NUMBERS.to_vec()),
            prop::sample::select(vec![1usize, 2, 4, 8])
        )
            .prop_map(|(at, value, width)| Mutation::Number(at, value, width)),
        (any::<Index>(), prop::sample::select(TOKENS.to_vec()))
            .prop_map(|(at, token)| Mutation::Insert(at, token)),
    ]
}

fn apply(seeds: &[Vec<u8>], bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    match m {
        Mutation::Cut(i) => bytes.truncate(at(i, bytes.len())),
        Mutation::Flip(i, bit) => {
            if !bytes.is_empty() {
                let i = at(i, bytes.len());
                bytes[i] ^= 1 << bit;
            }
        }
        Mutation::Splice(i, seed, from, len) => {
            let other = &seeds[seed.index(seeds.len())];
            let from = at(from, other.len());
            let part = &other[from..(from + len).min(other.len())];
            let i = at(i, bytes.len());
            let end = (i + part.len()).min(bytes.len());
            bytes.splice(i..end, part.iter().copied());
        }
        Mutation::Number(i, value, width) => {
            let i = at(i, bytes.len());
            let le = value.to_le_bytes();
            let end = (i + width).min(bytes.len());
            bytes.splice(i..end, le[..*width].iter().copied());
        }
        Mutation::Insert(i, token) => {
            let i = at(i, bytes.len());
            bytes.splice(i..i, token.iter().copied());
        }
    }
}

/// A seed, picked from `seeds`, with one to four mutations.
pub fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    assert!(!seeds.is_empty(), "no seed files");
    (any::<Index>(), prop::collection::vec(mutation(), 1..=4)).prop_map(move |(seed, mutations)| {
        let mut bytes = seeds[seed.index(seeds.len())].clone();
        for m in &mutations {
            apply(&seeds, &mut bytes, m);
        }
        bytes
    })
}

/// Runs `reader` on [`cases`] mutated seeds, written to `file` (a path in a fresh folder; the
/// reader may read other files beside it) before each call. `reader` returns its error
/// message, if any. Fails on a panic, a peak beyond [`allocation_cap`] or an error message
/// without the path `named` (`file`, or a folder for readers whose errors may name the
/// folder or another file in it); the failing case is shrunk and kept in `file`.
pub fn fuzz(
    name: &str,
    seeds: Vec<Vec<u8>>,
    file: &Path,
    named: &Path,
    reader: impl Fn(&Path) -> Option<String>,
) {
    let (_, probe) = peak_during(|| Vec::<u8>::with_capacity(4096));
    assert!(
        probe >= 4096,
        "fuzz::Counting is not this binary's global allocator"
    );
    let cases = cases();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&mutated(seeds), |bytes| {
        std::fs::write(file, &bytes).unwrap();
        let (message, peak) = peak_during(|| reader(file));
        let cap = allocation_cap(bytes.len());
        prop_assert!(
            peak <= cap,
            "{name}: {peak} bytes held at once for a file of {} bytes (cap {cap})",
            bytes.len()
        );
        if let Some(message) = message {
            let path = named.display().to_string();
            if !message.contains(&path) {
                return Err(TestCaseError::fail(format!(
                    "{name}: the error does not name {path}: {message}"
                )));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!`, and the case
    // count belongs in every `scripts/test` log.
    #[allow(clippy::explicit_write)]
    writeln!(std::io::stderr(), "fuzz {name}: {cases} cases").unwrap();
}
