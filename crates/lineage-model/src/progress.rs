//! The progress port: long work in the library crates (verifying a log, copying a ledger)
//! says how far it is, and the front end decides whether and how to show it. Libraries never
//! draw; `()` ignores every update.

/// Receives "`done` of `total` for `task`" updates; `total` is `None` when unknown.
pub trait Progress {
    fn update(&self, task: &'static str, done: u64, total: Option<u64>);
}

impl Progress for () {
    fn update(&self, _task: &'static str, _done: u64, _total: Option<u64>) {}
}
