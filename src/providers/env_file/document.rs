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
mod tests {
    use super::*;
    use crate::spec::writable::LINE_BREAKS;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const ENV_EXAMPLE: &str = include_str!("../../../fixtures/tldw_server/env.example");
    const PRODUCTION_ENV_EXAMPLE: &str =
        include_str!("../../../fixtures/tldw_server/production.env.example");

    fn parsed(text: &str) -> EnvDocument {
        EnvDocument::parse(text).unwrap_or_else(|error| panic!("{text:?} should parse: {error}"))
    }

    fn set_and_render(text: &str, key: &str, value: &str) -> String {
        let mut document = parsed(text);
        document.set(key, value).unwrap();
        document.render()
    }

    fn unwritable(value: &str) -> UnwritableReason {
        match parsed("").set("KEY", value) {
            Err(EnvValueError::Unwritable { key, reason }) => {
                assert_eq!(key.as_deref(), Some("KEY"));
                reason
            }
            other => panic!("{value:?} should be refused, got {other:?}"),
        }
    }

    /// tldw_server's `load_raw_env`, transcribed: what the production preflight reads.
    fn preflight_reading(text: &str) -> Result<BTreeMap<String, String>, String> {
        let mut values = BTreeMap::new();
        let unified = text.replace("\r\n", "\n");
        for (index, raw_line) in unified.split(LINE_BREAKS).enumerate() {
            let number = index + 1;
            let line = raw_line.trim_matches(is_python_whitespace);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("export ") {
                return Err(format!("line {number}: export syntax is not supported"));
            }
            let Some((name, value)) = line.split_once('=') else {
                return Err(format!("line {number}: expected NAME=value"));
            };
            let name = name.trim_matches(is_python_whitespace);
            let value = value.trim_matches(is_python_whitespace);
            if !is_portable_name(name) {
                return Err(format!("line {number}: invalid variable name"));
            }
            if values.contains_key(name) {
                return Err(format!("line {number}: duplicate variable name"));
            }
            let value = if value.starts_with(['\'', '"']) {
                if value.len() < 2 || value.chars().last() != value.chars().next() {
                    return Err(format!("line {number}: unmatched quote"));
                }
                &value[1..value.len() - 1]
            } else if value.ends_with(['\'', '"']) {
                return Err(format!("line {number}: unmatched quote"));
            } else {
                value
            };
            values.insert(name.to_owned(), value.to_owned());
        }
        Ok(values)
    }

    /// docker/cli `kvfile`, which compose uses for `format: raw`; only recent versions strip a
    /// pair of matching quotes.
    fn compose_raw_reading(
        text: &str,
        strips_quotes: bool,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut values = BTreeMap::new();
        for (index, raw_line) in text.split('\n').enumerate() {
            let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
            let line = if index == 0 {
                line.strip_prefix('\u{feff}').unwrap_or(line)
            } else {
                line
            };
            let line = line.trim_start_matches(char::is_whitespace);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key.is_empty() || key.contains([' ', '\t']) {
                return Err(format!("line {}: bad variable name {key:?}", index + 1));
            }
            let bytes = value.as_bytes();
            let quoted = bytes.len() >= 2
                && matches!(bytes[0], b'\'' | b'"')
                && bytes[bytes.len() - 1] == bytes[0];
            let value = if strips_quotes && quoted {
                &value[1..value.len() - 1]
            } else {
                value
            };
            values.insert(key.to_owned(), value.to_owned());
        }
        Ok(values)
    }

    #[test]
    fn the_shipped_env_example_renders_back_byte_for_byte() {
        assert_eq!(parsed(ENV_EXAMPLE).render(), ENV_EXAMPLE);
    }

    #[test]
    fn the_production_env_example_renders_back_byte_for_byte() {
        assert_eq!(
            parsed(PRODUCTION_ENV_EXAMPLE).render(),
            PRODUCTION_ENV_EXAMPLE
        );
    }

    #[test]
    fn odd_files_render_back_byte_for_byte() {
        let files = [
            "",
            "\n",
            "   \t ",
            "# only a comment",
            "# one\n# two\n\n",
            "A=1\r\nB=2\r\n",
            "A=1\rB=2\r",
            "A=1\nB=2",
            "A=1\r\n\r\nB=2",
            "export A=1\nexport\tB='two'\n",
            "A = value\nB= spaced  \nC =x\n",
            "A=value # comment\nB='quoted # not a comment' # comment\nC=\"x\"#glued\n",
            "A=\"line one\nline two\"\nB=after\n",
            "A=\"line one\r\nline two\"\r\nB=after\r\n",
            "KEY_WITHOUT_EQUALS\nOTHER # comment\n",
            "not a statement\n=x\nA B\nA=\"x\"y\nB=1\n",
            "\u{feff}A=1\n",
            "\u{feff}# comment\nA=1\n",
            "  \t indented=1  \n\n\n",
            "A=\u{b}x\u{c}\n\u{85}B=2\n",
            "'QUOTED'=1\n'multi\nline'=2\n",
        ];
        for text in files {
            assert_eq!(parsed(text).render(), text, "{text:?}");
        }
    }

    #[test]
    fn env_example_placeholders_read_as_python_dotenv_reads_them() {
        let document = parsed(ENV_EXAMPLE);
        // python-dotenv 1.2.2 reads 75 keys from this file.
        assert_eq!(document.entries().count(), 75);
        assert_eq!(
            document.get("SINGLE_USER_API_KEY"),
            Some("CHANGE_ME_TO_SECURE_API_KEY")
        );
        assert_eq!(document.get("AUTH_MODE"), Some("single_user"));
        assert_eq!(
            document.get("DATABASE_URL"),
            Some("sqlite:///./Databases/users.db")
        );
        assert_eq!(document.get("SESSION_ENCRYPTION_KEY"), Some(""));
        assert_eq!(
            document.get("CUSTOM_OPENAI_API_KEY"),
            Some("${OPENAI_API_KEY}")
        );
        assert_eq!(
            document.get("MCP_WS_ALLOWED_ORIGINS"),
            Some(r#"["http://127.0.0.1:8000","http://localhost:8000","http://localhost:5173"]"#)
        );
        // Commented out in the template, so absent.
        assert_eq!(document.get("JWT_SECRET_KEY"), None);
        let entry = document.entry("SINGLE_USER_API_KEY").unwrap();
        assert_eq!(
            (entry.line, entry.quoting, entry.exported),
            (22, Quoting::Bare, false)
        );
    }

    #[test]
    fn env_example_references_produce_interpolation_warnings() {
        let document = parsed(ENV_EXAMPLE);
        let interpolated: Vec<_> = document
            .warnings()
            .iter()
            .filter_map(|warning| match warning {
                EnvWarning::Interpolation { key, line } => Some((key.as_str(), *line)),
                _ => None,
            })
            .collect();
        assert_eq!(
            interpolated,
            [
                ("CUSTOM_OPENAI_API_KEY", 100),
                ("CUSTOM_OPENAI2_API_KEY", 101),
                ("CUSTOM_OPENAI_API_2_API_KEY", 102),
                ("BEDROCK_API_KEY", 134),
            ]
        );
        assert_eq!(document.warnings().len(), 4, "{:?}", document.warnings());
    }

    #[test]
    fn production_env_example_lists_required_names_with_empty_values() {
        let document = parsed(PRODUCTION_ENV_EXAMPLE);
        let entries: Vec<_> = document.entries().collect();
        assert_eq!(entries.len(), 24);
        assert!(
            entries
                .iter()
                .all(|entry| entry.value.as_deref() == Some(""))
        );
        assert_eq!(entries[0].key, "TLDW_PUBLIC_DOMAIN");
        assert_eq!(entries[0].line, 5);
        assert!(document.warnings().is_empty());
    }

    #[test]
    fn get_agrees_with_python_dotenv_on_tricky_lines() {
        // Each row was read by python-dotenv 1.2.2 with dotenv_values(path, interpolate=False)
        // from a file written byte for byte.
        let table: &[(&str, &str, Option<&str>)] = &[
            // a comment-looking value right after `=` and spaces is the value
            ("A= #x\n", "A", Some("#x")),
            // a hash right after `=` is the value
            ("A=#x\n", "A", Some("#x")),
            // a hash without whitespace before it stays in a bare value
            ("A=a#b\n", "A", Some("a#b")),
            // whitespace then a hash starts a comment
            ("A=a #b\n", "A", Some("a")),
            // a tab then a hash starts a comment
            ("A=a\t#b\n", "A", Some("a")),
            // a bare value is right-trimmed and keeps inner spaces
            ("A=a b  \n", "A", Some("a b")),
            // spaces after `=` are not part of the value
            ("A=  spaced\n", "A", Some("spaced")),
            // everything after the first comment is dropped
            ("A=1 # c # d\n", "A", Some("1")),
            // a hash inside single quotes is kept
            ("A='a #b'\n", "A", Some("a #b")),
            // a hash inside double quotes is kept and the comment after is dropped
            ("A=\"a #b\" # c\n", "A", Some("a #b")),
            // a comment may follow a closing quote without space
            ("A=\"x\"#c\n", "A", Some("x")),
            // single quotes decode only backslash-quote and backslash-backslash
            ("A='a\\'b\\\\c\\n'\n", "A", Some("a'b\\c\\n")),
            // double quotes decode \n and \t and keep unknown escapes
            ("A=\"a\\nb\\q\\t\"\n", "A", Some("a\nb\\q\t")),
            // an escaped closing quote at the end of the file closes by backtracking
            ("A=\"abc\\\"\n", "A", Some("abc\\")),
            // a doubled backslash before the closing quote decodes to one backslash
            ("A=\"a\\\\\"\n", "A", Some("a\\")),
            // CRLF inside quotes reads as LF (text mode)
            ("A=\"a\r\nb\"\n", "A", Some("a\nb")),
            // a lone CR inside quotes reads as LF (text mode)
            ("A='a\rb'\n", "A", Some("a\nb")),
            // a double-quoted value may span lines
            ("A=\"multi\nline\"\n", "A", Some("multi\nline")),
            // empty quotes with a comment read empty
            ("A=''  # c\n", "A", Some("")),
            // nothing after `=` reads empty
            ("A=\n", "A", Some("")),
            // a key without `=` has no value
            ("A\n", "A", None),
            // a key without `=` may carry a comment
            ("A # c\n", "A", None),
            // a single-quoted key is unquoted
            ("'A'=1\n", "A", Some("1")),
            // a single-quoted key may span lines
            ("'A\nB'=1\n", "A\nB", Some("1")),
            // export may be followed by a tab
            ("export\tA=1\n", "A", Some("1")),
            // export without whitespace is part of the key
            ("exportA=1\n", "exportA", Some("1")),
            // a vertical tab before `=` is skipped
            ("A\u{b}=1\n", "A", Some("1")),
            // a vertical tab after `=` is skipped
            ("A=\u{b}x\n", "A", Some("x")),
            // any Python whitespace before a hash starts a comment
            ("A=x \u{b}#c\n", "A", Some("x")),
            // U+001F counts as whitespace for Python and is trimmed
            ("A=x\u{1f}\n", "A", Some("x")),
            // without interpolation a reference is read literally
            ("A=${B}\n", "A", Some("${B}")),
            // a reference without braces is never interpolated
            ("A=$HOME\n", "A", Some("$HOME")),
            // a quote at the end of a bare value is kept
            ("A=abc\"\n", "A", Some("abc\"")),
            // a quote inside a bare value is kept
            ("A=it's\n", "A", Some("it's")),
            // whitespace around the statement is ignored
            ("  A=1  \n", "A", Some("1")),
            // single quotes keep backslash-t
            ("A='\\t'\n", "A", Some("\\t")),
            // a byte order mark becomes part of the first key
            ("\u{feff}A=1\n", "\u{feff}A", Some("1")),
        ];
        for &(text, key, value) in table {
            let document = parsed(text);
            let entries: Vec<_> = document.entries().collect();
            assert_eq!(entries.len(), 1, "{text:?}: {entries:?}");
            assert_eq!(entries[0].key, key, "{text:?}");
            assert_eq!(entries[0].value.as_deref(), value, "{text:?}");
            assert_eq!(document.get(key), value, "{text:?}");
        }
    }

    #[test]
    fn lines_python_dotenv_skips_are_kept_verbatim_with_a_warning() {
        // python-dotenv 1.2.2 logs "could not parse statement starting at line 1" for each of
        // these and then reads only B=1.
        let skipped = [
            "A=\"x\"y",      // junk after the closing quote
            "A=\"x\" \"y\"", // two quoted parts
            "=x",            // no key
            "A B",           // no `=`, and more than a key
            "export =1",     // `export ` is taken as a prefix, leaving no key
            "export ",       // likewise at the end of a line
            "''=1",          // an empty quoted key
        ];
        for statement in skipped {
            let text = format!("{statement}\nB=1\n");
            let document = parsed(&text);
            assert_eq!(document.render(), text);
            let keys: Vec<_> = document.entries().map(|entry| entry.key).collect();
            assert_eq!(keys, ["B"], "{text:?}");
            assert_eq!(document.get("B"), Some("1"));
            assert_eq!(
                document.warnings(),
                [EnvWarning::UnparseableLine { line: 1 }],
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_duplicate_key_names_both_lines() {
        let error = EnvDocument::parse("A=1\n# note\n\nB=2\nA=3\n").unwrap_err();
        assert_eq!(
            error,
            EnvParseError::DuplicateKey {
                key: "A".to_owned(),
                first_line: 1,
                second_line: 5,
            }
        );
        assert!(error.to_string().contains("line 1") && error.to_string().contains("line 5"));
        // A key without `=` still defines the key.
        assert!(matches!(
            EnvDocument::parse("A\r\nA=1\r\n"),
            Err(EnvParseError::DuplicateKey {
                first_line: 1,
                second_line: 2,
                ..
            })
        ));
    }

    #[test]
    fn keys_differing_only_in_case_are_different_keys() {
        let document = parsed("tldw_production=true\nTLDW_PRODUCTION=false\n");
        assert_eq!(document.get("tldw_production"), Some("true"));
        assert_eq!(document.get("TLDW_PRODUCTION"), Some("false"));
    }

    #[test]
    fn an_unclosed_quote_is_an_error_naming_the_key_and_its_line() {
        let table: &[(&str, &str, usize)] = &[
            // python-dotenv finds no closing quote at all and skips the line.
            ("X=1\nA=\"abc\n", "A", 2),
            ("X=1\r\n\r\nA='abc\r\nB=1\r\n", "A", 3),
            // python-dotenv closes at the next line's first quote, fails on `def"`, and so
            // drops B as well.
            ("A=\"abc\nB=\"def\"\nC=3\n", "A", 1),
            // A quoted key python-dotenv cannot close.
            ("'abc=1\n", "abc=1", 1),
        ];
        for &(text, key, line) in table {
            assert_eq!(
                EnvDocument::parse(text).unwrap_err(),
                EnvParseError::UnterminatedQuote {
                    key: key.to_owned(),
                    line,
                },
                "{text:?}"
            );
        }
    }

    #[test]
    fn warnings_name_what_other_readers_take_differently() {
        let text = "\u{feff}# template\n\
                    export EXPORTED=1\n\
                    BARE_KEY\n\
                    COMMENTED=1 # note\n\
                    MULTI=\"one\ntwo\"\n\
                    ESCAPED=\"tab\\there\"\n\
                    SPACED = 1\n\
                    TRAILING=1  \n\
                    REFERENCE=${HOME}\n\
                    not a statement\n";
        let document = parsed(text);
        let key = |key: &str| key.to_owned();
        assert_eq!(
            document.warnings(),
            [
                EnvWarning::ByteOrderMark,
                // python-dotenv reads the mark as a key of its own before the comment.
                EnvWarning::NonPortableKey {
                    key: key("\u{feff}"),
                    line: 1
                },
                EnvWarning::MissingEquals {
                    key: key("\u{feff}"),
                    line: 1
                },
                EnvWarning::ExportPrefix {
                    key: key("EXPORTED"),
                    line: 2
                },
                EnvWarning::MissingEquals {
                    key: key("BARE_KEY"),
                    line: 3
                },
                EnvWarning::InlineComment {
                    key: key("COMMENTED"),
                    line: 4
                },
                EnvWarning::MultiLineValue {
                    key: key("MULTI"),
                    line: 5
                },
                EnvWarning::EscapeSequence {
                    key: key("ESCAPED"),
                    line: 7
                },
                EnvWarning::SpaceAroundEquals {
                    key: key("SPACED"),
                    line: 8
                },
                EnvWarning::TrailingWhitespace {
                    key: key("TRAILING"),
                    line: 9
                },
                EnvWarning::Interpolation {
                    key: key("REFERENCE"),
                    line: 10
                },
                EnvWarning::UnparseableLine { line: 11 },
            ]
        );
        assert_eq!(document.get("ESCAPED"), Some("tab\there"));
        assert!(
            document.warnings()[0]
                .to_string()
                .contains("byte order mark")
        );
    }

    #[test]
    fn only_references_python_dotenv_expands_are_warned_about() {
        let table = [
            ("${NAME}", true),
            ("${NAME:-fallback}", true),
            ("${}", true),
            ("prefix${A}suffix", true),
            ("${NAME", false),
            ("${NAME:fallback}", false),
            ("$NAME", false),
            ("$${NAME", false),
            ("${a${B}", true),
        ];
        for (value, expected) in table {
            assert_eq!(would_interpolate(value), expected, "{value:?}");
        }
    }

    #[test]
    fn set_values_read_back_through_parse() {
        // The text written for a new key, and why.
        let table: &[(&str, &str)] = &[
            ("", "KEY="),
            ("plain", "KEY=plain"),
            ("with space", "KEY='with space'"),
            (" leading", "KEY=' leading'"),
            ("trailing ", "KEY='trailing '"),
            ("tab\there", "KEY='tab\there'"),
            ("no\u{a0}break", "KEY='no\u{a0}break'"),
            ("a#b", "KEY=a#b"),
            ("#start", "KEY=#start"),
            ("a #b", "KEY='a #b'"),
            ("it's", "KEY=it's"),
            ("'quoted'", "KEY=\"'quoted'\""),
            ("ends'", "KEY=\"ends'\""),
            ("\"double\"", "KEY='\"double\"'"),
            ("say \"hi\"", "KEY='say \"hi\"'"),
            ("it's a test", "KEY=\"it's a test\""),
            ("C:\\path\\to", "KEY=C:\\path\\to"),
            ("back\\'slash", "KEY=back\\'slash"),
            ("$HOME", "KEY=$HOME"),
            ("$", "KEY=$"),
            ("{braces}", "KEY={braces}"),
            ("x=y", "KEY=x=y"),
            ("ünïcödé", "KEY=ünïcödé"),
            (
                r#"["http://a","http://b"]"#,
                r#"KEY=["http://a","http://b"]"#,
            ),
            ("tldw_abc.DEF-123_456", "KEY=tldw_abc.DEF-123_456"),
        ];
        for &(value, line) in table {
            let rendered = set_and_render("", "KEY", value);
            assert_eq!(rendered, format!("{line}\n"), "{value:?}");
            let document = parsed(&rendered);
            assert_eq!(document.get("KEY"), Some(value), "{value:?}");
            assert_eq!(
                preflight_reading(&rendered).unwrap()["KEY"],
                value,
                "{value:?}"
            );
            assert_eq!(
                compose_raw_reading(&rendered, true).unwrap()["KEY"],
                value,
                "{value:?}"
            );
        }
    }

    #[test]
    fn setting_a_value_with_a_hash_after_whitespace_quotes_it() {
        assert_eq!(
            set_and_render("", "KEY", "value # not a comment"),
            "KEY='value # not a comment'\n"
        );
        assert_eq!(set_and_render("", "KEY", "value#kept"), "KEY=value#kept\n");
    }

    #[test]
    fn values_no_reading_can_share_are_refused_with_the_reason() {
        let table = [
            ("two\nlines", UnwritableReason::LineBreak('\n')),
            ("carriage\rreturn", UnwritableReason::LineBreak('\r')),
            ("vertical\u{b}tab", UnwritableReason::LineBreak('\u{b}')),
            ("next\u{85}line", UnwritableReason::LineBreak('\u{85}')),
            (
                "line\u{2028}separator",
                UnwritableReason::LineBreak('\u{2028}'),
            ),
            ("nul\0byte", UnwritableReason::Nul),
            ("${OPENAI_API_KEY}", UnwritableReason::Interpolation),
            ("half ${open", UnwritableReason::Interpolation),
            // Needs quotes because of the space; a backslash is decoded in either quoting.
            ("back\\ slash", UnwritableReason::NoCommonQuoting),
            // Needs quotes because of the space; holds both quote kinds.
            ("it's \"both\"", UnwritableReason::NoCommonQuoting),
            // Needs quotes because it starts with one; holds both quote kinds.
            ("'both\"", UnwritableReason::NoCommonQuoting),
        ];
        for (value, reason) in table {
            assert_eq!(unwritable(value), reason, "{value:?}");
        }
        let error = parsed("").set("API_KEY", "${OPENAI_API_KEY}").unwrap_err();
        assert!(
            error.to_string().contains("API_KEY") && error.to_string().contains("${"),
            "{error}"
        );
    }

    #[test]
    fn setting_an_invalid_key_is_refused() {
        for key in ["", "1ABC", "A-B", "A B", "ÉTÉ", "export A", "A=B"] {
            assert_eq!(
                parsed("").set(key, "value"),
                Err(EnvValueError::InvalidKey {
                    key: key.to_owned()
                }),
                "{key:?}"
            );
        }
    }

    #[test]
    fn setting_an_existing_key_keeps_its_export_spacing_and_comment() {
        let text = "# head\nexport  KEY = \"old\"   # note\nOTHER=1\n";
        assert_eq!(
            set_and_render(text, "KEY", "new value"),
            "# head\nexport  KEY = \"new value\"   # note\nOTHER=1\n"
        );
        assert_eq!(
            set_and_render("  KEY=old # note\n", "KEY", "new"),
            "  KEY=new # note\n"
        );
    }

    #[test]
    fn setting_keeps_the_quoting_style_when_it_carries_the_value() {
        assert_eq!(set_and_render("A='x'\n", "A", "y"), "A='y'\n");
        assert_eq!(set_and_render("A=\"x\"\n", "A", "it's"), "A=\"it's\"\n");
        // Single quotes cannot carry `'`; bare can.
        assert_eq!(set_and_render("A='x'\n", "A", "it's"), "A=it's\n");
        // Double quotes cannot carry `"`; it needs quotes for the space, so single.
        assert_eq!(
            set_and_render("A=\"x\"\n", "A", "say \"hi\""),
            "A='say \"hi\"'\n"
        );
        assert_eq!(set_and_render("A=x\n", "A", "two words"), "A='two words'\n");
    }

    #[test]
    fn setting_replaces_a_multi_line_value_whole() {
        let text = "A=1\nB=\"line one\nline two\" # note\nC=3\n";
        let mut document = parsed(text);
        assert_eq!(document.entry("C").unwrap().line, 4);
        document.set("B", "one").unwrap();
        assert_eq!(document.render(), "A=1\nB=\"one\" # note\nC=3\n");
        assert_eq!(document.entry("C").unwrap().line, 3);
        assert!(
            !document
                .warnings()
                .iter()
                .any(|warning| matches!(warning, EnvWarning::MultiLineValue { .. }))
        );
    }

    #[test]
    fn setting_a_key_without_equals_gives_it_one() {
        assert_eq!(set_and_render("A\n", "A", "v"), "A=v\n");
        assert_eq!(set_and_render("A   # note\n", "A", "v"), "A=v   # note\n");
        assert_eq!(set_and_render("export A\n", "A", "v"), "export A=v\n");
    }

    #[test]
    fn setting_an_empty_value_before_a_comment_quotes_it() {
        // `A= # note` would read "# note" in python-dotenv.
        assert_eq!(set_and_render("A=x # note\n", "A", ""), "A='' # note\n");
        assert_eq!(set_and_render("A # note\n", "A", ""), "A='' # note\n");
        assert_eq!(
            set_and_render("A=\"x\" # note\n", "A", ""),
            "A=\"\" # note\n"
        );
        assert_eq!(set_and_render("A=x\n", "A", ""), "A=\n");
    }

    #[test]
    fn setting_a_bare_value_before_a_glued_comment_adds_a_space() {
        // After a closing quote python-dotenv takes `#note` as a comment; after a bare value
        // only ` #note` is one.
        let rendered = set_and_render("A=\"x\"#note\n", "A", "a\"b");
        assert_eq!(rendered, "A=a\"b #note\n");
        assert_eq!(parsed(&rendered).get("A"), Some("a\"b"));
        assert_eq!(set_and_render("A#note\n", "A", "v"), "A=v #note\n");
    }

    #[test]
    fn setting_drops_whitespace_after_the_value_that_compose_would_read() {
        assert_eq!(set_and_render("A=x   \nB=1\n", "A", "y"), "A=y\nB=1\n");
        assert_eq!(set_and_render("A=   \n", "A", "y"), "A=y\n");
        assert_eq!(
            parsed("A=  \n").warnings(),
            [EnvWarning::TrailingWhitespace {
                key: "A".to_owned(),
                line: 1
            }]
        );
        assert_eq!(set_and_render("A='x'\t\n", "A", "y"), "A='y'\n");
    }

    #[test]
    fn a_new_key_is_appended_with_the_file_line_ending() {
        assert_eq!(set_and_render("", "B", "2"), "B=2\n");
        assert_eq!(set_and_render("A=1\n", "B", "2"), "A=1\nB=2\n");
        assert_eq!(set_and_render("A=1", "B", "2"), "A=1\nB=2\n");
        assert_eq!(set_and_render("A=1\r\n", "B", "2"), "A=1\r\nB=2\r\n");
        assert_eq!(
            set_and_render("A=1\r\nC=3", "B", "2"),
            "A=1\r\nC=3\r\nB=2\r\n"
        );
        assert_eq!(
            set_and_render("# only a comment", "B", "2"),
            "# only a comment\nB=2\n"
        );
        let mut document = parsed("A=1\n\n# tail\n");
        document.set("B", "2").unwrap();
        assert_eq!(document.entry("B").unwrap().line, 4);
    }

    #[test]
    fn setting_every_value_to_itself_changes_no_byte() {
        for fixture in [ENV_EXAMPLE, PRODUCTION_ENV_EXAMPLE] {
            let mut document = parsed(fixture);
            let values: Vec<(String, String)> = document
                .entries()
                .filter_map(|entry| Some((entry.key.to_owned(), entry.value?)))
                .collect();
            for (key, value) in values {
                if value.contains("${") {
                    continue;
                }
                document.set(&key, &value).unwrap();
            }
            assert_eq!(document.render(), fixture);
        }
    }

    #[test]
    fn replacing_a_reference_clears_its_warning() {
        let mut document = parsed(ENV_EXAMPLE);
        document.set("CUSTOM_OPENAI_API_KEY", "sk-test").unwrap();
        assert_eq!(document.get("CUSTOM_OPENAI_API_KEY"), Some("sk-test"));
        let interpolated = document
            .warnings()
            .iter()
            .filter(|warning| matches!(warning, EnvWarning::Interpolation { .. }))
            .count();
        assert_eq!(interpolated, 3);
        assert_eq!(document.entry("CUSTOM_OPENAI_API_KEY").unwrap().line, 100);
    }

    #[test]
    fn encode_value_prefers_the_requested_quoting_when_it_carries_the_value() {
        assert_eq!(encode_value("abc", Quoting::Double).unwrap(), "\"abc\"");
        assert_eq!(encode_value("abc", Quoting::Single).unwrap(), "'abc'");
        assert_eq!(encode_value("abc", Quoting::Bare).unwrap(), "abc");
        assert_eq!(encode_value("a b", Quoting::Bare).unwrap(), "'a b'");
        assert_eq!(
            encode_value("it's a", Quoting::Single).unwrap(),
            "\"it's a\""
        );
        assert_eq!(encode_value("", Quoting::Bare).unwrap(), "");
        assert_eq!(
            encode_value("${X}", Quoting::Bare),
            Err(EnvValueError::Unwritable {
                key: None,
                reason: UnwritableReason::Interpolation,
            })
        );
    }

    #[test]
    fn removing_a_key_deletes_only_its_own_lines() {
        let mut document = parsed("# head\nA=1\nB=\"x\ny\" # note\n\nC=3");
        assert!(document.remove("B"));
        assert_eq!(document.render(), "# head\nA=1\n\nC=3");
        assert_eq!(document.entry("C").unwrap().line, 4);
        assert!(document.remove("C"));
        assert_eq!(document.render(), "# head\nA=1\n\n");
        assert!(!document.remove("C"));
        assert!(!document.contains("C"));
        assert!(document.contains("A"));
        document.set("C", "4").unwrap();
        assert_eq!(document.render(), "# head\nA=1\n\nC=4\n");
        assert!(document.remove("A"));
        assert!(document.remove("C"));
        assert_eq!(document.render(), "# head\n\n");
    }

    #[test]
    fn entries_come_in_file_order_with_their_lines() {
        let document = parsed("export A='1'\n\nB\n  C=\"x\ny\"\nD=4\n");
        let entries: Vec<_> = document.entries().collect();
        let summary: Vec<_> = entries
            .iter()
            .map(|entry| {
                (
                    entry.key,
                    entry.value.as_deref(),
                    entry.line,
                    entry.quoting,
                    entry.exported,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("A", Some("1"), 1, Quoting::Single, true),
                ("B", None, 3, Quoting::Bare, false),
                ("C", Some("x\ny"), 4, Quoting::Double, false),
                ("D", Some("4"), 6, Quoting::Bare, false),
            ]
        );
        assert!(document.contains("B"));
        assert_eq!(document.get("B"), None);
    }

    #[test]
    fn twenty_thousand_keys_parse_and_set_without_quadratic_work() {
        // Re-rendering or re-parsing per edit would copy about 10 GB here and not finish in
        // any reasonable time; the linear path takes well under a second.
        let count = 20_000;
        let text: String = (0..count)
            .map(|index| format!("KEY_{index}=value_{index}\n"))
            .collect();
        let mut document = parsed(&text);
        for index in 0..count {
            document
                .set(&format!("KEY_{index}"), &format!("new {index}"))
                .unwrap();
            document.set(&format!("ADDED_{index}"), "x").unwrap();
        }
        let rendered = document.render();
        let reparsed = parsed(&rendered);
        assert_eq!(reparsed.entries().count(), 2 * count);
        assert_eq!(reparsed.get("KEY_19999"), Some("new 19999"));
        assert_eq!(reparsed.entry("ADDED_0").unwrap().line, count + 1);
    }

    const TEXT_TOKENS: &[&str] = &[
        "=", "#", "'", "\"", "\\", "$", "{", "}", " ", "\t", "\r", "\n", "\r\n", "export ",
        "export\t", "A", "B", "C", "Z", "a", "x", "\u{b}", "\u{c}", "\u{85}", "\u{a0}", "\u{1f}",
        "\u{feff}", "é", "\\n", "\\'", "\\\"", "A=", "B=", "\nA=", "\nB=", "\nC=", " # c", "${A}",
    ];

    fn rich_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(TEXT_TOKENS), 0..48)
            .prop_map(|tokens| tokens.concat())
    }

    const VALUE_TOKENS: &[&str] = &[
        "a", "Z", "0", " ", "\t", "#", "'", "\"", "\\", "$", "{", "}", "${", "=", ":", "/", "[",
        "]", ",", "é", "\u{a0}", "\u{1f}", "\u{feff}", "\n", "\r", "\0", "\u{b}", "\u{2028}",
    ];

    fn value() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(VALUE_TOKENS), 0..10)
            .prop_map(|tokens| tokens.concat())
    }

    const LINE_TEMPLATES: &[&str] = &[
        "{K}=v",
        "export {K}=v",
        "{K} = v",
        "{K}=v # note",
        "{K}='v w'",
        "{K}=\"v\"#note",
        "{K}",
        "{K} # note",
        "# comment",
        "",
        "   ",
        "{K}=\"multi\nline\"",
        "{K}=v   ",
        "{K}= # c",
        "not a statement",
        "  {K}=\"esc\\taped\"",
        "{K}=${REF}",
    ];

    /// Documents that parse, each template used with a distinct key.
    fn document_text() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(proptest::sample::select(LINE_TEMPLATES), 0..8),
            prop_oneof![Just("\n"), Just("\r\n")],
            any::<bool>(),
        )
            .prop_map(|(templates, line_ending, final_line_ending)| {
                let lines: Vec<String> = templates
                    .iter()
                    .enumerate()
                    .map(|(index, template)| template.replace("{K}", &format!("KEY_{index}")))
                    .collect();
                let mut text = lines
                    .join(line_ending)
                    .replace('\n', line_ending)
                    .replace("\r\r\n", "\r\n");
                if final_line_ending && !text.is_empty() {
                    text.push_str(line_ending);
                }
                text
            })
    }

    /// The refusal the module notes promise for `value`.
    fn documented_refusal(value: &str) -> Option<UnwritableReason> {
        if let Some(character) = value
            .chars()
            .find(|character| LINE_BREAKS.contains(character))
        {
            return Some(UnwritableReason::LineBreak(character));
        }
        if value.contains('\0') {
            return Some(UnwritableReason::Nul);
        }
        if value.contains("${") {
            return Some(UnwritableReason::Interpolation);
        }
        let needs_quotes = value.chars().any(is_python_whitespace)
            || value.starts_with(['\'', '"'])
            || value.ends_with(['\'', '"']);
        let fits_no_quotes = value.contains('\\') || (value.contains('\'') && value.contains('"'));
        (needs_quotes && fits_no_quotes).then_some(UnwritableReason::NoCommonQuoting)
    }

    fn entry_summaries(
        document: &EnvDocument,
        except: &str,
    ) -> Vec<(String, Option<String>, Quoting, bool)> {
        document
            .entries()
            .filter(|entry| entry.key != except)
            .map(|entry| {
                (
                    entry.key.to_owned(),
                    entry.value,
                    entry.quoting,
                    entry.exported,
                )
            })
            .collect()
    }

    proptest! {
        #[test]
        fn text_from_a_rich_alphabet_renders_back_unchanged(text in rich_text()) {
            if let Ok(document) = EnvDocument::parse(&text) {
                prop_assert_eq!(document.render(), text);
                let _ = document.warnings();
            }
        }

        #[test]
        fn arbitrary_text_renders_back_unchanged(text in any::<String>()) {
            if let Ok(document) = EnvDocument::parse(&text) {
                prop_assert_eq!(document.render(), text);
            }
        }

        #[test]
        fn set_reads_back_every_accepted_value_and_leaves_the_rest_alone(
            text in document_text(),
            key_choice in 0usize..10,
            value in value(),
        ) {
            let before = EnvDocument::parse(&text).unwrap();
            let key = if key_choice < 8 { format!("KEY_{key_choice}") } else { "NEW_KEY".to_owned() };
            let mut after = before.clone();
            match after.set(&key, &value) {
                Ok(()) => {
                    prop_assert_eq!(documented_refusal(&value), None);
                    let rendered = after.render();
                    let reparsed = EnvDocument::parse(&rendered).unwrap();
                    prop_assert_eq!(reparsed.get(&key), Some(value.as_str()));
                    prop_assert_eq!(after.get(&key), Some(value.as_str()));
                    prop_assert_eq!(entry_summaries(&reparsed, &key), entry_summaries(&before, &key));
                    // Removing the key from both sides leaves the same text, but for the line
                    // ending a new key needs before it.
                    let mut expected = before.clone();
                    expected.remove(&key);
                    let mut expected = expected.render();
                    if !before.contains(&key) && !expected.is_empty() && !expected.ends_with(['\n', '\r']) {
                        expected.push_str(before.line_ending);
                    }
                    let mut without = reparsed;
                    without.remove(&key);
                    prop_assert_eq!(without.render(), expected);
                }
                Err(EnvValueError::Unwritable { key: refused_key, reason }) => {
                    prop_assert_eq!(refused_key, Some(key.clone()));
                    prop_assert_eq!(Some(reason), documented_refusal(&value));
                    prop_assert_eq!(after.render(), text);
                }
                Err(error) => prop_assert!(false, "unexpected {error}"),
            }
        }

        #[test]
        fn written_values_read_the_same_in_python_dotenv_the_preflight_and_compose(
            writes in proptest::collection::vec((0usize..4, value()), 1..12),
        ) {
            let mut document = EnvDocument::default();
            let mut expected = BTreeMap::new();
            for (key_choice, value) in writes {
                let key = ["JWT_SECRET_KEY", "tldw_production", "DATABASE_URL", "_X1"][key_choice];
                if document.set(key, &value).is_ok() {
                    expected.insert(key.to_owned(), value);
                }
            }
            let rendered = document.render();
            let reparsed = EnvDocument::parse(&rendered).unwrap();
            let dotenv: BTreeMap<String, String> = reparsed
                .entries()
                .map(|entry| (entry.key.to_owned(), entry.value.unwrap()))
                .collect();
            prop_assert_eq!(&dotenv, &expected);
            prop_assert!(reparsed.warnings().is_empty(), "{:?}", reparsed.warnings());
            prop_assert_eq!(preflight_reading(&rendered), Ok(expected.clone()));
            prop_assert_eq!(compose_raw_reading(&rendered, true), Ok(expected.clone()));
            // Compose versions that keep quotes agree on every value written bare.
            let literal = compose_raw_reading(&rendered, false).unwrap();
            for entry in reparsed.entries().filter(|entry| entry.quoting == Quoting::Bare) {
                prop_assert_eq!(Some(&literal[entry.key]), entry.value.as_ref());
            }
        }
    }
}
