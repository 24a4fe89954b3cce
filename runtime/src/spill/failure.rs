//! A failure of the working directory (disk full, a file removed) while a state is being
//! updated, where the generated code has no error to return: it is recorded here, the
//! state goes on without its disk tier, and the runner stops with it before writing any
//! output or checkpoint (see [`failure`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static FAILED: AtomicBool = AtomicBool::new(false);
static MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// Records `e` (the first failure is kept).
#[cold]
pub(crate) fn record(e: String) {
    let mut m = MESSAGE.lock().unwrap_or_else(|p| p.into_inner());
    if m.is_none() {
        *m = Some(e);
    }
    FAILED.store(true, Ordering::Release);
}

/// The first failure of the disk backend's working directory in this process, if any.
/// State read or written since may be wrong: nothing computed after it may leave the
/// process (the runner stops before its next output and checkpoint).
///
/// ```
/// assert_eq!(simplestream_runtime::spill::failure(), None);
/// ```
pub fn failure() -> Option<String> {
    if !FAILED.load(Ordering::Acquire) {
        return None;
    }
    MESSAGE.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
