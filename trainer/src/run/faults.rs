//! Named points of the stage loop where a fault test can stop the process.
//!
//! `INSCL_TEST_PAUSE_AT=POINT:N` makes the N-th (1-based) arrival at the point named `POINT`
//! print `paused at POINT:N` on stderr and wait for one line on stdin before going on. A test
//! (`trainer/tests/run_faults.rs`) kills the process there with SIGKILL, or fills the disk and lets it
//! go on. Without the variable a point does nothing. The points:
//!
//! | point | where |
//! |---|---|
//! | `tags-write` | before `tags.json` is written (after each batch of `llm` tags) |
//! | `embed-cache-write` | before a `cache/embed-*.json` is written |
//! | `train-step` | after each training step |
//! | `eval-step` | after each evaluated batch |
//! | `checkpoint-write` | after `checkpoints/.stage-NN.tmp/` is created, before the learner writes into it |
//! | `checkpoint-rename` | after the learner wrote the checkpoint, before it is renamed into place |
//! | `stage-write` | after `embeddings.json`, before `stages/stage-NN.json` |
//! | `results-write` | after the stage file, before `results.json` |

use std::io::BufRead;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable that names the point to pause at.
pub const PAUSE_AT_VAR: &str = "INSCL_TEST_PAUSE_AT";

/// The configured point and arrival, parsed once.
fn target() -> Option<&'static (String, usize)> {
    static TARGET: OnceLock<Option<(String, usize)>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let value = std::env::var(PAUSE_AT_VAR).ok()?;
            let parsed = value
                .rsplit_once(':')
                .and_then(|(point, n)| Some((point.to_owned(), n.parse().ok()?)));
            assert!(
                parsed.is_some(),
                "{PAUSE_AT_VAR}={value:?}: expected POINT:N (N = 1, 2, ...)"
            );
            parsed
        })
        .as_ref()
}

/// Marks an arrival at `point`: pauses there when [`PAUSE_AT_VAR`] names this arrival.
pub(crate) fn point(point: &str) {
    static ARRIVALS: AtomicUsize = AtomicUsize::new(0);
    let Some((name, n)) = target() else { return };
    if name != point || ARRIVALS.fetch_add(1, Ordering::SeqCst) + 1 != *n {
        return;
    }
    eprintln!("paused at {point}:{n}");
    let mut line = String::new();
    // A closed stdin goes on as well: the pause only waits for the test's decision.
    let _ = std::io::stdin().lock().read_line(&mut line);
}
