//! The fault-injection test hook, `TLDW_OPS_FAULT` (documented in docs/testing.md). Tests use it
//! to fail or pause the apply at an exact step so that rollback and crash recovery can be
//! checked at every step index. It is inert unless the variable is set, and compiled out of a
//! build without the `test-hooks` cargo feature: such a build never reads the variable
//! (settings) and never pauses here.
//!
//! Grammar: a comma-separated list of
//! - `fail:N` — step N fails before touching anything;
//! - `fail-after:N` — step N does its work, then reports failure (its undo must restore it);
//! - `fail-undo:N` — undoing step N fails;
//! - `pause:N:before` / `pause:N:after` — sleep 60 s after step N is journaled `started`
//!   and before it acts, or after it acted and before it is journaled `done`, so a test can
//!   SIGKILL the process at that point.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Point {
    Before,
    After,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    pub fail: BTreeSet<u32>,
    pub fail_after: BTreeSet<u32>,
    pub fail_undo: BTreeSet<u32>,
    pub pause: BTreeSet<(u32, Point)>,
}

impl Faults {
    pub fn parse(text: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let parts: Vec<&str> = item.split(':').collect();
            let index = |position: usize| -> Result<u32, String> {
                parts
                    .get(position)
                    .and_then(|text| text.parse().ok())
                    .ok_or_else(|| format!("TLDW_OPS_FAULT: `{item}` needs a step number"))
            };
            match parts[0] {
                "fail" => {
                    faults.fail.insert(index(1)?);
                }
                "fail-after" => {
                    faults.fail_after.insert(index(1)?);
                }
                "fail-undo" => {
                    faults.fail_undo.insert(index(1)?);
                }
                "pause" => {
                    let point = match parts.get(2) {
                        Some(&"before") => Point::Before,
                        Some(&"after") => Point::After,
                        _ => {
                            return Err(format!(
                                "TLDW_OPS_FAULT: `{item}` needs :before or :after"
                            ));
                        }
                    };
                    faults.pause.insert((index(1)?, point));
                }
                other => return Err(format!("TLDW_OPS_FAULT: unknown fault `{other}`")),
            }
        }
        Ok(faults)
    }

    /// Sleeps at a pause point so a test can kill the process there (only with `test-hooks`).
    pub async fn pause_at(&self, step: u32, point: Point) {
        if cfg!(feature = "test-hooks") && self.pause.contains(&(step, point)) {
            eprintln!("TLDW_OPS_FAULT: paused at step {step} ({point:?})");
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_fault_text_parses_or_is_refused_without_panicking(text in "[a-z:,0-9-]{0,30}") {
            let _ = Faults::parse(&text);
        }
    }

    #[test]
    fn the_fault_grammar_parses_every_kind() {
        let faults = Faults::parse("fail:2, fail-after:0,fail-undo:1,pause:3:after").unwrap();
        assert!(faults.fail.contains(&2));
        assert!(faults.fail_after.contains(&0));
        assert!(faults.fail_undo.contains(&1));
        assert!(faults.pause.contains(&(3, Point::After)));
        assert!(Faults::parse("explode:1").is_err());
        assert!(Faults::parse("pause:1").is_err());
        assert!(Faults::parse("fail:x").is_err());
    }
}
