//! Lossless reading and editing of tldw_server `.env` files.
//!
//! This module owns the `.env` text format and nothing else. It reads text the way python-dotenv 1.x
//! (`dotenv_values(path, interpolate=False)`) does, keeps every byte it does not edit, and writes
//! values so that the three readers of a tldw_server env file agree on them: python-dotenv (the
//! server and pydantic-settings), the production preflight (`load_raw_env` in
//! `Helper_Scripts/Deployment/production_preflight.py`) and Docker compose `env_file` with
//! `format: raw` (docker/cli `kvfile`). It must not do I/O, read the process environment or expand
//! `${VAR}`: callers hand it text and take text back, so planning stays pure.
//!
//! # What each reader does with a line
//!
//! - python-dotenv follows the grammar in its `parser.py`, mirrored by `read_binding` below: optional
//!   `export `, a key, optional `=`, then a bare value (cut at the first `#` that follows
//!   whitespace, then right-trimmed), a single-quoted value (decodes `\\` and `\'`) or a
//!   double-quoted value (decodes `\\ \' \" \a \b \f \n \r \t \v`); quoted values may span lines. A
//!   statement it cannot parse is skipped. It opens the file in text mode, so CRLF and CR inside a
//!   quoted value read as LF, and it keeps a byte order mark as part of the first key. With its
//!   default `interpolate=True` it expands `${NAME}` and `${NAME:-default}` in every value,
//!   single-quoted ones included.
//! - The preflight splits with `str.splitlines()` (which also breaks at VT, FF, U+001C..U+001E,
//!   NEL, U+2028 and U+2029), strips each line and value, refuses `export`, lines without `=`,
//!   names outside `[A-Za-z_][A-Za-z0-9_]*`, duplicates and unmatched quotes, strips one pair of
//!   matching quotes and decodes nothing. It does not know inline comments.
//! - Compose `format: raw` splits at LF, drops leading whitespace, refuses a key containing a space
//!   or tab, and keeps everything after the first `=` (trailing whitespace and comments included);
//!   recent docker/cli versions also strip one pair of matching quotes, older ones keep them.
//!
//! # How [`EnvDocument::set`] writes a value
//!
//! Values with CR, LF or another character `str.splitlines()` breaks at, NUL, or `${` are refused.
//! Otherwise the value is written bare when every reader takes it literally, that is when it is
//! empty or when it contains no whitespace (Python's definition, which adds U+001C..U+001F to
//! Unicode's) and neither starts nor ends with `'` or `"`. A bare value may contain `#`: without
//! whitespace before it, python-dotenv keeps it (`A=a#b` and even `A=#x` read `a#b` and `#x`). It
//! may contain backslashes and `$NAME`, which no reader decodes in a bare value. Otherwise it is
//! single-quoted when it has no `'` and no `\`, else double-quoted when it has no `"` and no `\`;
//! anything else (whitespace or an edge quote together with a backslash, or with both quote kinds)
//! is refused, because escaping it for python-dotenv would make the preflight read the escapes
//! literally. Next to a kept inline comment an empty value is quoted (`A= # note` reads `# note`)
//! and a bare value gets a space before a glued `#`.
//!
//! # What parsing refuses
//!
//! [`EnvDocument::parse`] refuses duplicate keys, which python-dotenv resolves silently and the
//! preflight refuses, and quotes python-dotenv cannot close on their own line, which make it drop
//! that line and sometimes every line up to the next quote. Other statements python-dotenv skips
//! are kept verbatim and reported by [`EnvDocument::warnings`], with whatever else another reader
//! would take differently.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

pub use crate::spec::writable::{Quoting, UnwritableReason};
use crate::spec::writable::{
    choose_quoting, is_portable_name, is_python_whitespace, refuse_unwritable,
};

/// One `KEY[=value]` statement as python-dotenv reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEntry<'a> {
    pub key: &'a str,
    /// The value python-dotenv reads without interpolation; `None` for a key without `=`.
    pub value: Option<String>,
    /// The 1-based line of the key in the current text.
    pub line: usize,
    pub quoting: Quoting,
    pub exported: bool,
}

/// Text that cannot be taken as a managed env file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvParseError {
    #[error(
        "{key:?} is defined on line {first_line} and again on line {second_line}: python-dotenv \
         would silently keep the second and the production preflight refuses the file"
    )]
    DuplicateKey {
        key: String,
        first_line: usize,
        second_line: usize,
    },
    #[error(
        "the quote opened on line {line} (at {key:?}) is not closed on that line: python-dotenv \
         would skip it, possibly with the lines after it, and the production preflight refuses it"
    )]
    UnterminatedQuote { key: String, line: usize },
}

/// A value or key that [`EnvDocument::set`] or [`encode_value`] refuses to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvValueError {
    #[error(
        "{key:?} is not a name this tool writes: names must match [A-Za-z_][A-Za-z0-9_]*, as the \
         production preflight requires"
    )]
    InvalidKey { key: String },
    #[error("cannot write the value{}: {reason}", describe_key(.key))]
    Unwritable {
        /// `None` when the value was encoded on its own, by [`encode_value`].
        key: Option<String>,
        reason: UnwritableReason,
    },
}

fn describe_key(key: &Option<String>) -> String {
    key.as_ref()
        .map(|key| format!(" of {key}"))
        .unwrap_or_default()
}

/// Something in the text that python-dotenv accepts but that another reader takes differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvWarning {
    ByteOrderMark,
    UnparseableLine { line: usize },
    Interpolation { key: String, line: usize },
    ExportPrefix { key: String, line: usize },
    MissingEquals { key: String, line: usize },
    NonPortableKey { key: String, line: usize },
    MultiLineValue { key: String, line: usize },
    InlineComment { key: String, line: usize },
    EscapeSequence { key: String, line: usize },
    SpaceAroundEquals { key: String, line: usize },
    TrailingWhitespace { key: String, line: usize },
}

impl fmt::Display for EnvWarning {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ByteOrderMark => formatter.write_str(
                "the file starts with a byte order mark: python-dotenv reads it as part of the first \
                 key and the production preflight rejects that line",
            ),
            Self::UnparseableLine { line } => write!(
                formatter,
                "line {line} is not a NAME=value statement: python-dotenv skips it, and it is kept \
                 as it is"
            ),
            Self::Interpolation { key, line } => write!(
                formatter,
                "{key} on line {line} contains a ${{...}} reference: python-dotenv substitutes it, \
                 the production preflight and compose read it literally"
            ),
            Self::ExportPrefix { key, line } => write!(
                formatter,
                "{key} on line {line} has an `export` prefix, which the production preflight and \
                 compose refuse"
            ),
            Self::MissingEquals { key, line } => write!(
                formatter,
                "{key} on line {line} has no `=`: python-dotenv reads no value and the production \
                 preflight refuses the line"
            ),
            Self::NonPortableKey { key, line } => write!(
                formatter,
                "{key:?} on line {line} is not a name of the form [A-Za-z_][A-Za-z0-9_]*, which \
                 the production preflight requires"
            ),
            Self::MultiLineValue { key, line } => write!(
                formatter,
                "{key} on line {line} has a quoted value over several lines, which the production \
                 preflight and compose, reading line by line, refuse or cut"
            ),
            Self::InlineComment { key, line } => write!(
                formatter,
                "{key} on line {line} has an inline comment: python-dotenv drops it, but the \
                 production preflight and compose read it as part of the value"
            ),
            Self::EscapeSequence { key, line } => write!(
                formatter,
                "{key} on line {line} has a backslash escape that python-dotenv decodes but the \
                 production preflight and compose read literally"
            ),
            Self::SpaceAroundEquals { key, line } => write!(
                formatter,
                "{key} on line {line} has whitespace around `=`: compose refuses it before `=` and \
                 keeps it in the value after `=`"
            ),
            Self::TrailingWhitespace { key, line } => write!(
                formatter,
                "{key} on line {line} ends with whitespace, which compose keeps in the value"
            ),
        }
    }
}

/// An env file's text, split into whole-line blocks so that edits touch only their own lines.
#[derive(Debug, Clone)]
pub struct EnvDocument {
    /// Concatenated, the blocks are the text. A removed block is left empty until it is the last.
    blocks: Vec<Block>,
    index: HashMap<String, usize>,
    line_ending: &'static str,
    /// Line numbers and warnings, worked out on demand so that a run of edits stays linear.
    derived: OnceLock<Derived>,
}

impl Default for EnvDocument {
    /// An empty file, which takes LF line endings.
    fn default() -> Self {
        EnvDocument {
            blocks: Vec::new(),
            index: HashMap::new(),
            line_ending: "\n",
            derived: OnceLock::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct Block {
    text: String,
    entry: Option<EntryLayout>,
    issues: Vec<Issue>,
}

/// Where the parts of one statement sit in its block; offsets are bytes into the block's text.
#[derive(Debug, Clone)]
struct EntryLayout {
    key: String,
    value: Option<String>,
    quoting: Quoting,
    exported: bool,
    /// End of the key text, where `=` goes when the statement has none.
    key_end: usize,
    value_start: usize,
    /// End of the value text including its closing quote, where an inline comment may begin.
    value_end: usize,
    /// Start of the line ending (or the end of the text).
    content_end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Issue {
    Unparseable,
    Interpolation,
    ExportPrefix,
    MissingEquals,
    NonPortableKey,
    MultiLineValue,
    InlineComment,
    EscapeSequence,
    SpaceAroundEquals,
    TrailingWhitespace,
}

#[derive(Debug, Clone)]
struct Derived {
    block_lines: Vec<usize>,
    warnings: Vec<EnvWarning>,
}

impl EnvDocument {
    /// Reads `text` as python-dotenv does, refusing duplicate keys and quotes python-dotenv
    /// cannot close on their own line. Never panics.
    pub fn parse(text: &str) -> Result<EnvDocument, EnvParseError> {
        let mut document = EnvDocument {
            line_ending: detect_line_ending(text),
            ..EnvDocument::default()
        };
        // The line each block starts on, for naming both lines of a duplicate.
        let mut block_lines = Vec::new();
        let mut position = 0;
        let mut line = 1;
        while position < text.len() {
            let content_start = position + leading_whitespace_length(&text[position..]);
            // Whole blank lines get their own block; whitespace on the statement's own line stays
            // with it, so that removing the statement removes exactly its lines.
            let block_start = if content_start == text.len() {
                content_start
            } else {
                text[position..content_start]
                    .rfind(['\r', '\n'])
                    .map_or(position, |index| position + index + 1)
            };
            if block_start > position {
                let blank = &text[position..block_start];
                document.blocks.push(Block::verbatim(blank, Vec::new()));
                block_lines.push(line);
                line += count_line_breaks(blank);
                position = block_start;
                if position == text.len() {
                    break;
                }
            }
            let rest = &text[block_start..];
            let (block, end) = match read_binding(rest, content_start - block_start) {
                Binding::Comment { end } => (Block::verbatim(&rest[..end], Vec::new()), end),
                Binding::Entry { layout, end } => {
                    if let Some(&first_index) = document.index.get(&layout.key) {
                        return Err(EnvParseError::DuplicateKey {
                            key: layout.key,
                            first_line: block_lines[first_index],
                            second_line: line,
                        });
                    }
                    document
                        .index
                        .insert(layout.key.clone(), document.blocks.len());
                    let block_text = &rest[..end];
                    let block = Block {
                        text: block_text.to_owned(),
                        issues: entry_issues(block_text, &layout),
                        entry: Some(layout),
                    };
                    (block, end)
                }
                Binding::Failed { end, quote } => {
                    let block_text = &rest[..end];
                    let spans_lines = block_text
                        .trim_end_matches(['\r', '\n'])
                        .contains(['\r', '\n']);
                    // A quote python-dotenv cannot close, or closes only on a later line before
                    // failing, would make it drop lines that look like statements.
                    if let Some(quote) = quote.filter(|quote| !quote.closed || spans_lines) {
                        return Err(EnvParseError::UnterminatedQuote {
                            key: quote.key,
                            line: line + count_line_breaks(&rest[..quote.position]),
                        });
                    }
                    (Block::verbatim(block_text, vec![Issue::Unparseable]), end)
                }
            };
            document.blocks.push(block);
            block_lines.push(line);
            line += count_line_breaks(&rest[..end]);
            position = block_start + end;
        }
        Ok(document)
    }

    /// The value python-dotenv reads for `key`; `None` when the key is absent or has no `=`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.layout(key)?.value.as_deref()
    }

    /// The statement for `key`, with the line it starts on in the current text.
    pub fn entry(&self, key: &str) -> Option<EnvEntry<'_>> {
        let &index = self.index.get(key)?;
        let layout = self.blocks[index].entry.as_ref()?;
        Some(layout.as_entry(self.derived().block_lines[index]))
    }

    /// Every statement with a key, in file order.
    pub fn entries(&self) -> impl Iterator<Item = EnvEntry<'_>> {
        let lines = &self.derived().block_lines;
        self.blocks
            .iter()
            .zip(lines)
            .filter_map(|(block, &line)| Some(block.entry.as_ref()?.as_entry(line)))
    }

    /// Whether a statement defines `key`, with or without `=`.
    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Writes `value` for `key`: in place when the key exists (keeping its `export`, key text,
    /// spacing around `=`, inline comment and, when it can carry the value, its quoting; dropping
    /// whitespace after the value that compose would read), else as a new `KEY=value` line at the
    /// end of the file.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), EnvValueError> {
        if !is_portable_name(key) {
            return Err(EnvValueError::InvalidKey {
                key: key.to_owned(),
            });
        }
        let unwritable = |reason| EnvValueError::Unwritable {
            key: Some(key.to_owned()),
            reason,
        };
        refuse_unwritable(value).map_err(unwritable)?;
        match self.index.get(key) {
            Some(&index) => {
                let block = &self.blocks[index];
                let Some(layout) = block.entry.as_ref() else {
                    unreachable!("the key index only points at entries")
                };
                let text = block.text.as_str();
                let suffix_start = if layout.value.is_some() {
                    layout.value_end
                } else {
                    layout.key_end
                };
                let suffix = &text[suffix_start..layout.content_end];
                // Whitespace alone after a value is dropped: compose would read it as part of it.
                let comment = if suffix.contains('#') { suffix } else { "" };
                let mut preferred = layout.quoting;
                // `KEY= # note` reads "# note" in python-dotenv: an empty value before a comment
                // needs quotes.
                if value.is_empty() && !comment.is_empty() && preferred == Quoting::Bare {
                    preferred = Quoting::Single;
                }
                let quoting = choose_quoting(value, preferred)
                    .ok_or_else(|| unwritable(UnwritableReason::NoCommonQuoting))?;
                let mut new_text = String::with_capacity(text.len() + value.len() + 3);
                if layout.value.is_some() {
                    new_text.push_str(&text[..layout.value_start]);
                } else {
                    new_text.push_str(&text[..layout.key_end]);
                    new_text.push('=');
                }
                push_encoded(&mut new_text, value, quoting);
                if quoting == Quoting::Bare && comment.starts_with('#') {
                    // After a bare value, python-dotenv sees a comment only behind whitespace.
                    new_text.push(' ');
                }
                new_text.push_str(comment);
                new_text.push_str(&text[layout.content_end..]);
                self.replace_entry_block(index, new_text);
            }
            None => {
                let quoting = choose_quoting(value, Quoting::Bare)
                    .ok_or_else(|| unwritable(UnwritableReason::NoCommonQuoting))?;
                if let Some(last) = self.blocks.last_mut()
                    && !last.text.ends_with(['\n', '\r'])
                {
                    last.text.push_str(self.line_ending);
                }
                let mut new_text = String::with_capacity(key.len() + value.len() + 4);
                new_text.push_str(key);
                new_text.push('=');
                push_encoded(&mut new_text, value, quoting);
                new_text.push_str(self.line_ending);
                self.index.insert(key.to_owned(), self.blocks.len());
                self.blocks.push(Block {
                    text: String::new(),
                    entry: None,
                    issues: Vec::new(),
                });
                self.replace_entry_block(self.blocks.len() - 1, new_text);
            }
        }
        self.derived.take();
        Ok(())
    }

    /// Removes the statement for `key` (all its lines, line ending included) and nothing else.
    pub fn remove(&mut self, key: &str) -> bool {
        let Some(index) = self.index.remove(key) else {
            return false;
        };
        self.blocks[index] = Block {
            text: String::new(),
            entry: None,
            issues: Vec::new(),
        };
        // Removed blocks at the end are dropped so that the last block is always live text.
        while self
            .blocks
            .last()
            .is_some_and(|block| block.text.is_empty())
        {
            self.blocks.pop();
        }
        self.derived.take();
        true
    }

    /// The text, byte for byte the parsed text when nothing was changed.
    pub fn render(&self) -> String {
        let length = self.blocks.iter().map(|block| block.text.len()).sum();
        let mut text = String::with_capacity(length);
        for block in &self.blocks {
            text.push_str(&block.text);
        }
        text
    }

    /// What other readers would take differently from python-dotenv, in file order.
    pub fn warnings(&self) -> &[EnvWarning] {
        &self.derived().warnings
    }

    fn layout(&self, key: &str) -> Option<&EntryLayout> {
        self.blocks[*self.index.get(key)?].entry.as_ref()
    }

    /// Installs a freshly written statement, reading it back with the same grammar as parse.
    fn replace_entry_block(&mut self, index: usize, text: String) {
        let content_offset = leading_whitespace_length(&text);
        let Binding::Entry { layout, .. } = read_binding(&text, content_offset) else {
            unreachable!("a written statement always reads back as an entry: {text:?}")
        };
        let issues = entry_issues(&text, &layout);
        self.blocks[index] = Block {
            text,
            entry: Some(layout),
            issues,
        };
    }

    fn derived(&self) -> &Derived {
        self.derived.get_or_init(|| {
            let mut block_lines = Vec::with_capacity(self.blocks.len());
            let mut warnings = Vec::new();
            if self
                .blocks
                .first()
                .is_some_and(|block| block.text.starts_with('\u{feff}'))
            {
                warnings.push(EnvWarning::ByteOrderMark);
            }
            let mut line = 1;
            for block in &self.blocks {
                block_lines.push(line);
                let key = block
                    .entry
                    .as_ref()
                    .map_or("", |layout| layout.key.as_str());
                for issue in &block.issues {
                    warnings.push(issue.as_warning(key, line));
                }
                line += count_line_breaks(&block.text);
            }
            Derived {
                block_lines,
                warnings,
            }
        })
    }
}

impl Block {
    fn verbatim(text: &str, issues: Vec<Issue>) -> Block {
        Block {
            text: text.to_owned(),
            entry: None,
            issues,
        }
    }
}

impl EntryLayout {
    fn as_entry(&self, line: usize) -> EnvEntry<'_> {
        EnvEntry {
            key: &self.key,
            value: self.value.clone(),
            line,
            quoting: self.quoting,
            exported: self.exported,
        }
    }
}

impl Issue {
    fn as_warning(self, key: &str, line: usize) -> EnvWarning {
        let key = key.to_owned();
        match self {
            Self::Unparseable => EnvWarning::UnparseableLine { line },
            Self::Interpolation => EnvWarning::Interpolation { key, line },
            Self::ExportPrefix => EnvWarning::ExportPrefix { key, line },
            Self::MissingEquals => EnvWarning::MissingEquals { key, line },
            Self::NonPortableKey => EnvWarning::NonPortableKey { key, line },
            Self::MultiLineValue => EnvWarning::MultiLineValue { key, line },
            Self::InlineComment => EnvWarning::InlineComment { key, line },
            Self::EscapeSequence => EnvWarning::EscapeSequence { key, line },
            Self::SpaceAroundEquals => EnvWarning::SpaceAroundEquals { key, line },
            Self::TrailingWhitespace => EnvWarning::TrailingWhitespace { key, line },
        }
    }
}

/// The text to put after `=` for `value`: `preferred` when it carries the value for every reader,
/// else the first of bare, single and double quotes that does (see the module notes).
pub fn encode_value(value: &str, preferred: Quoting) -> Result<String, EnvValueError> {
    let unwritable = |reason| EnvValueError::Unwritable { key: None, reason };
    refuse_unwritable(value).map_err(unwritable)?;
    let quoting = choose_quoting(value, preferred)
        .ok_or_else(|| unwritable(UnwritableReason::NoCommonQuoting))?;
    let mut text = String::with_capacity(value.len() + 2);
    push_encoded(&mut text, value, quoting);
    Ok(text)
}

fn push_encoded(text: &mut String, value: &str, quoting: Quoting) {
    let quote = match quoting {
        Quoting::Bare => None,
        Quoting::Single => Some('\''),
        Quoting::Double => Some('"'),
    };
    text.extend(quote);
    text.push_str(value);
    text.extend(quote);
}

/// One python-dotenv statement starting at a non-whitespace character.
enum Binding {
    /// A comment, or anything else python-dotenv reads without a key.
    Comment {
        end: usize,
    },
    Entry {
        layout: EntryLayout,
        end: usize,
    },
    /// python-dotenv would skip these bytes.
    Failed {
        end: usize,
        quote: Option<OpenQuote>,
    },
}

/// The last quote python-dotenv opened in a statement it then failed on.
struct OpenQuote {
    key: String,
    position: usize,
    closed: bool,
}

/// Mirrors python-dotenv's `parse_binding` on `text[start..]`; offsets in the result are into
/// `text`, and `end` is just past the statement's line ending.
fn read_binding(text: &str, start: usize) -> Binding {
    let bytes = text.as_bytes();
    let mut position = start;
    let failed = |position: usize, quote: Option<OpenQuote>| Binding::Failed {
        end: rest_of_line_end(text, position),
        quote,
    };

    // `(?:export[^\S\r\n]+)?`
    let mut exported = false;
    if let Some(after) = text[position..].strip_prefix("export") {
        let spaces = inline_whitespace_length(after);
        if spaces > 0 {
            exported = true;
            position += "export".len() + spaces;
        }
    }

    let key_start = position;
    let key: String = match bytes.get(position) {
        Some(b'#') => {
            return Binding::Comment {
                end: rest_of_line_end(text, position),
            };
        }
        // `'([^']+)'`, which may run over lines.
        Some(b'\'') => match text[position + 1..].find('\'') {
            Some(length) if length > 0 => {
                let key =
                    normalize_newlines(&text[position + 1..position + 1 + length]).into_owned();
                position += length + 2;
                key
            }
            found => {
                let first_line = text[position + 1..]
                    .split(['\r', '\n'])
                    .next()
                    .unwrap_or("");
                let quote = OpenQuote {
                    key: first_line.to_owned(),
                    position,
                    closed: found.is_some(),
                };
                return failed(position, Some(quote));
            }
        },
        // `([^=\#\s]+)`
        _ => {
            let length = text[position..]
                .find(|character: char| {
                    character == '=' || character == '#' || is_python_whitespace(character)
                })
                .unwrap_or(text.len() - position);
            if length == 0 {
                return failed(position, None);
            }
            position += length;
            text[key_start..position].to_owned()
        }
    };
    let key_end = position;
    position += inline_whitespace_length(&text[position..]);

    let mut value = None;
    let mut quoting = Quoting::Bare;
    let mut value_start = key_end;
    let mut value_end = key_end;
    let mut open_quote = None;
    if bytes.get(position) == Some(&b'=') {
        let equals_position = position;
        position += 1;
        position += inline_whitespace_length(&text[position..]);
        value_start = position;
        match bytes.get(position) {
            Some(&quote @ (b'\'' | b'"')) => {
                let Some(closing) = find_closing_quote(text, position + 1, quote) else {
                    let quote = OpenQuote {
                        key,
                        position,
                        closed: false,
                    };
                    return failed(position, Some(quote));
                };
                let content = normalize_newlines(&text[position + 1..closing]);
                if quote == b'\'' {
                    quoting = Quoting::Single;
                    value = Some(decode_single_quoted(&content));
                } else {
                    quoting = Quoting::Double;
                    value = Some(decode_double_quoted(&content));
                }
                open_quote = Some(position);
                position = closing + 1;
                value_end = position;
            }
            None | Some(b'\r' | b'\n') => {
                // python-dotenv takes spaces after `=` with the `=`, but before an empty value
                // they are trailing whitespace, which an edit should not keep in front of the
                // new value.
                value = Some(String::new());
                value_start = equals_position + 1;
                value_end = value_start;
            }
            _ => {
                let part_length = text[position..]
                    .find(['\r', '\n'])
                    .unwrap_or(text.len() - position);
                let part = &text[position..position + part_length];
                let length = unquoted_value_length(part);
                value = Some(part[..length].to_owned());
                value_end = position + length;
                position += part_length;
            }
        }
    }

    // `(?:[^\S\r\n]*#[^\r\n]*)?`
    let spaces = inline_whitespace_length(&text[position..]);
    if bytes.get(position + spaces) == Some(&b'#') {
        position += text[position..]
            .find(['\r', '\n'])
            .unwrap_or(text.len() - position);
    }
    // `[^\S\r\n]*(?:\r\n|\n|\r|$)`
    position += inline_whitespace_length(&text[position..]);
    let content_end = position;
    let end = match bytes.get(position) {
        None => position,
        Some(b'\r') if bytes.get(position + 1) == Some(&b'\n') => position + 2,
        Some(b'\r' | b'\n') => position + 1,
        Some(_) => {
            let quote = open_quote.map(|quote_position| OpenQuote {
                key,
                position: quote_position,
                closed: true,
            });
            return failed(position, quote);
        }
    };
    Binding::Entry {
        layout: EntryLayout {
            key,
            value,
            quoting,
            exported,
            key_end,
            value_start,
            value_end,
            content_end,
        },
        end,
    }
}

/// Where python-dotenv's `[^\r\n]*(?:\r|\n|\r\n)?` recovery ends, taking a whole CRLF where it
/// takes only the CR: the LF is whitespace it skips before the next statement anyway.
fn rest_of_line_end(text: &str, position: usize) -> usize {
    let bytes = text.as_bytes();
    match text[position..].find(['\r', '\n']) {
        None => text.len(),
        Some(offset) => {
            let line_break = position + offset;
            if bytes[line_break] == b'\r' && bytes.get(line_break + 1) == Some(&b'\n') {
                line_break + 2
            } else {
                line_break + 1
            }
        }
    }
}

/// The closing quote python-dotenv's `'((?:\\'|[^'])*)'` (or its double-quote twin) settles on:
/// the first quote not preceded by a backslash, or failing that, by backtracking, the quote of
/// the last backslash-quote pair.
fn find_closing_quote(text: &str, from: usize, quote: u8) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut index = from;
    let mut last_escaped_quote = None;
    while index < bytes.len() {
        if bytes[index] == b'\\' && bytes.get(index + 1) == Some(&quote) {
            last_escaped_quote = Some(index + 1);
            index += 2;
        } else if bytes[index] == quote {
            return Some(index);
        } else {
            index += 1;
        }
    }
    last_escaped_quote
}

/// Length of python-dotenv's bare value within `part`: `re.sub(r"\s+#.*", "", part).rstrip()`.
fn unquoted_value_length(part: &str) -> usize {
    let mut whitespace_run_start = None;
    for (index, character) in part.char_indices() {
        if character == '#'
            && let Some(run_start) = whitespace_run_start
        {
            return part[..run_start]
                .trim_end_matches(is_python_whitespace)
                .len();
        }
        if is_python_whitespace(character) {
            whitespace_run_start.get_or_insert(index);
        } else {
            whitespace_run_start = None;
        }
    }
    part.trim_end_matches(is_python_whitespace).len()
}

fn decode_single_quoted(content: &str) -> String {
    decode_escapes(content, |escaped| {
        matches!(escaped, '\\' | '\'').then_some(escaped)
    })
}

fn decode_double_quoted(content: &str) -> String {
    decode_escapes(content, |escaped| match escaped {
        '\\' | '\'' | '"' => Some(escaped),
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        _ => None,
    })
}

/// Replaces each backslash pair `decode` knows, left to right, as `re.sub` does.
fn decode_escapes(content: &str, decode: impl Fn(char) -> Option<char>) -> String {
    let mut decoded = String::with_capacity(content.len());
    let mut characters = content.chars().peekable();
    while let Some(character) = characters.next() {
        if character == '\\'
            && let Some(replacement) = characters.peek().copied().and_then(&decode)
        {
            decoded.push(replacement);
            characters.next();
            continue;
        }
        decoded.push(character);
    }
    decoded
}

/// python-dotenv reads files in text mode, where CRLF and CR arrive as LF.
fn normalize_newlines(text: &str) -> Cow<'_, str> {
    if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

fn entry_issues(text: &str, layout: &EntryLayout) -> Vec<Issue> {
    let mut issues = Vec::new();
    if layout.exported {
        issues.push(Issue::ExportPrefix);
    }
    if !is_portable_name(&layout.key) {
        issues.push(Issue::NonPortableKey);
    }
    let Some(value) = &layout.value else {
        issues.push(Issue::MissingEquals);
        return issues;
    };
    if would_interpolate(value) {
        issues.push(Issue::Interpolation);
    }
    let raw_value = &text[layout.value_start..layout.value_end];
    if raw_value.contains(['\r', '\n']) {
        issues.push(Issue::MultiLineValue);
    }
    if layout.quoting != Quoting::Bare
        && *normalize_newlines(&raw_value[1..raw_value.len() - 1]) != **value
    {
        issues.push(Issue::EscapeSequence);
    }
    let suffix = &text[layout.value_end..layout.content_end];
    if suffix.contains('#') {
        issues.push(Issue::InlineComment);
    } else if !suffix.is_empty() {
        issues.push(Issue::TrailingWhitespace);
    }
    let around_equals = &text[layout.key_end..layout.value_start];
    if around_equals.len() > 1 {
        issues.push(Issue::SpaceAroundEquals);
    }
    issues
}

/// Whether python-dotenv's `\$\{([^}:]*)(?::-([^}]*))?\}` finds a reference to expand.
fn would_interpolate(value: &str) -> bool {
    let mut search_from = 0;
    while let Some(found) = value[search_from..].find("${") {
        let rest = &value[search_from + found + 2..];
        let name_length = rest.find(['}', ':']).unwrap_or(rest.len());
        let after_name = &rest[name_length..];
        if after_name.starts_with('}')
            || after_name
                .strip_prefix(":-")
                .is_some_and(|default| default.contains('}'))
        {
            return true;
        }
        search_from += found + 1;
    }
    false
}

/// python-dotenv's `[^\S\r\n]`.
fn is_inline_whitespace(character: char) -> bool {
    character != '\r' && character != '\n' && is_python_whitespace(character)
}

fn inline_whitespace_length(text: &str) -> usize {
    text.find(|character| !is_inline_whitespace(character))
        .unwrap_or(text.len())
}

fn leading_whitespace_length(text: &str) -> usize {
    text.find(|character| !is_python_whitespace(character))
        .unwrap_or(text.len())
}

/// Line breaks as python-dotenv and editors count them: CRLF, LF or a lone CR.
fn count_line_breaks(text: &str) -> usize {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|&(index, &byte)| {
            byte == b'\n' || (byte == b'\r' && bytes.get(index + 1) != Some(&b'\n'))
        })
        .count()
}

/// The file's own line ending, from its first line break; LF for a file without one.
fn detect_line_ending(text: &str) -> &'static str {
    match text
        .find(['\r', '\n'])
        .map(|index| &text.as_bytes()[index..])
    {
        Some([b'\r', b'\n', ..]) => "\r\n",
        Some([b'\r', ..]) => "\r",
        _ => "\n",
    }
}

#[cfg(test)]
mod tests;
