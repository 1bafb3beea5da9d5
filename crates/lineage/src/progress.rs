//! Progress bars for long work (`log verify`, `store migrate`, `base refresh`): drawn with
//! indicatif on stderr, only on a terminal, never under `--format json` or `--quiet`
//! (`Settings::progress`). The library crates report progress through
//! `lineage_model::Progress`; this is the one implementation that draws.

use std::cell::RefCell;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lineage_model::Progress;

use crate::settings::Settings;

/// A progress bar per task, replaced when the task changes, cleared when dropped.
pub struct Bars {
    current: RefCell<Option<(&'static str, ProgressBar)>>,
    enabled: bool,
}

impl Bars {
    pub fn new(s: &Settings) -> Bars {
        Bars {
            current: RefCell::new(None),
            enabled: s.progress(),
        }
    }

    fn bar(task: &'static str, total: Option<u64>) -> ProgressBar {
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let style = match total {
            Some(_) => ProgressStyle::with_template("{msg:<24} [{bar:30}] {pos}/{len} ({eta})"),
            None => ProgressStyle::with_template("{msg:<24} {spinner} {pos}"),
        }
        .expect("constant templates parse")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(task);
        bar
    }
}

impl Progress for Bars {
    fn update(&self, task: &'static str, done: u64, total: Option<u64>) {
        if !self.enabled {
            return;
        }
        let mut current = self.current.borrow_mut();
        let same = current.as_ref().is_some_and(|(t, _)| *t == task);
        if !same {
            if let Some((_, old)) = current.take() {
                old.finish_and_clear();
            }
            *current = Some((task, Bars::bar(task, total)));
        }
        if let Some((_, bar)) = current.as_ref() {
            if let Some(t) = total {
                bar.set_length(t);
            }
            bar.set_position(done);
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Some((_, bar)) = self.current.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}
