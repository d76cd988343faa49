//! The pure half of the backup kind: `backup.set.*` addresses. Sets are not declared one by
//! one in the spec and their steps come from the backup planner (`plan::backups`), so this
//! kind only names its envdiff section.

use crate::model::Address;
use crate::plan::kind::Kind;

/// `backup.set.*` addresses.
pub struct BackupSets;

impl Kind for BackupSets {
    fn section(&self, _address: &Address) -> (u8, String) {
        (5, "backups".to_string())
    }
}
