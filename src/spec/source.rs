//! Where a value came from: file, line and column, and the text of every loaded file so that
//! diagnostics can quote the offending line. Owns no parsing; the loader fills it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// A position in a YAML file. Lines and columns are 1-based, columns count characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Location {
    pub file: Arc<str>,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: &Arc<str>, line: usize, column: usize) -> Location {
        Location {
            file: Arc::clone(file),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The text of every file read while loading, keyed by the display name used in locations.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: BTreeMap<Arc<str>, SourceFile>,
}

#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl SourceMap {
    pub fn add(&mut self, name: Arc<str>, path: &Path, text: Arc<str>) {
        self.files.insert(
            name,
            SourceFile {
                path: path.to_path_buf(),
                text,
            },
        );
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(|file| &*file.text)
    }

    pub fn path(&self, name: &str) -> Option<&Path> {
        self.files.get(name).map(|file| file.path.as_path())
    }

    /// The one line a location points at, without its line ending.
    pub fn line(&self, location: &Location) -> Option<&str> {
        let text = self.text(&location.file)?;
        text.lines().nth(location.line.checked_sub(1)?)
    }

    pub fn files(&self) -> impl Iterator<Item = (&Arc<str>, &SourceFile)> {
        self.files.iter()
    }
}

/// The name a file is shown under: relative to the working directory when it is below it.
pub fn display_name(path: &Path) -> Arc<str> {
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(&cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf());
    Arc::from(shown.to_string_lossy().as_ref())
}
