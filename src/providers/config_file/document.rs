//! Lossless reader and editor for tldw_server's `config.txt`.
//!
//! This module owns the INI text of that one file. It reads it exactly the way
//! tldw_server does, with Python 3.11's `configparser.ConfigParser()` and its
//! default options (strict, `=`/`:` delimiters, full-line `#`/`;` comments,
//! blank lines kept inside values, `[DEFAULT]` fallback, `%` interpolation),
//! so that what [`IniDocument::get`] answers is what the server will see. Edits
//! made through [`IniDocument::set`] and [`IniDocument::remove`] touch only the
//! bytes of the options they change; everything else (comments, blank lines,
//! order, key spelling, delimiter spacing, line endings, a missing final
//! newline, a byte-order mark) is rendered back byte for byte.
//!
//! It must not do I/O: callers read the file, hand its text to
//! [`IniDocument::parse`], and write [`IniDocument::render`] back however they
//! see fit (atomically, with a backup, ...). It does not know which keys
//! tldw_server uses or what their values mean, and its errors never quote
//! option values, because `config.txt` holds API keys.

use std::collections::HashMap;

use crate::spec::writable::ConfigRefusal;

/// configparser's default section: its options are visible from every section.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// configparser's `MAX_INTERPOLATION_DEPTH`; deeper chains are reported as an
/// error (this is how configparser catches reference cycles).
const MAX_INTERPOLATION_DEPTH: usize = 10;

const BOM: char = '\u{feff}';

/// Why the text is not something tldw_server's configparser would accept.
///
/// Line numbers are 1-based and count `\n`, `\r\n` and a lone `\r` as line
/// breaks, like Python's universal-newline file reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IniParseError {
    #[error("line {line}: text before the first [section] header")]
    MissingSectionHeader { line: usize },
    /// The line's text is not included: a secret pasted on a line of its own must not reach
    /// an error message.
    #[error("line {line}: not a [section] header, a comment or a `key = value` option")]
    InvalidLine { line: usize },
    #[error("line {second_line}: section [{section}] is already defined at line {first_line}")]
    DuplicateSection {
        section: String,
        first_line: usize,
        second_line: usize,
    },
    #[error(
        "line {second_line}: section [{second}] differs only by letter case from [{first}] \
         at line {first_line}; configparser reads them as two sections, which a person editing \
         the file would hardly mean, so tldw-ops refuses the file"
    )]
    AmbiguousSection {
        first: String,
        first_line: usize,
        second: String,
        second_line: usize,
    },
    #[error(
        "line {second_line}: option {key:?} in section [{section}] is already set at line \
         {first_line} (option names are case-insensitive)"
    )]
    DuplicateOption {
        section: String,
        key: String,
        first_line: usize,
        second_line: usize,
    },
}

/// Why [`IniDocument::set`] or [`encode_value`] refused to write something.
///
/// Values themselves are never quoted: they may be secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IniValueError {
    #[error(
        "value for {} contains a line break (CR or LF); configparser would not read it back \
         as the same value",
        target(.section, .key)
    )]
    LineBreak { section: String, key: String },
    #[error(
        "value for {} starts or ends with whitespace, which configparser strips when reading",
        target(.section, .key)
    )]
    SurroundingWhitespace { section: String, key: String },
    #[error("cannot create section {section:?}: the name {reason}")]
    InvalidSection {
        section: String,
        reason: &'static str,
    },
    #[error("cannot create option {key:?} in section [{section}]: the name {reason}")]
    InvalidKey {
        section: String,
        key: String,
        reason: &'static str,
    },
}

fn target(section: &str, key: &str) -> String {
    if section.is_empty() && key.is_empty() {
        "an option".to_owned()
    } else {
        format!("[{section}] {key}")
    }
}

impl IniValueError {
    fn for_option(self, section: &str, key: &str) -> Self {
        let (section, key) = (section.to_owned(), key.to_owned());
        match self {
            Self::LineBreak { .. } => Self::LineBreak { section, key },
            Self::SurroundingWhitespace { .. } => Self::SurroundingWhitespace { section, key },
            other => other,
        }
    }
}

/// Why a stored value cannot be expanded the way configparser's
/// `BasicInterpolation` expands it (configparser raises on `get` too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IniInterpolationError {
    #[error(
        "[{section}] {key}: a '%' in its value, or in a value it references, is followed by \
         neither '%' nor '(name)s' (a literal percent sign is written '%%')"
    )]
    Syntax { section: String, key: String },
    #[error("[{section}] {key}: %({reference})s names no option in [{section}] or [DEFAULT]")]
    MissingReference {
        section: String,
        key: String,
        reference: String,
    },
    #[error(
        "[{section}] {key}: %(name)s references nest deeper than {MAX_INTERPOLATION_DEPTH} levels \
         (a reference cycle?)"
    )]
    TooDeep { section: String, key: String },
}

/// One option as it is stored in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniEntry<'a> {
    /// Section name as written in its header.
    pub section: &'a str,
    /// Option name as written (configparser itself only sees it lower-cased).
    pub key: &'a str,
    /// The value as configparser holds it before interpolation: stripped, with
    /// continuation lines joined by `\n` and trailing blank lines dropped.
    pub raw_value: String,
    /// 1-based line of the option's first line in the current rendering.
    pub line: usize,
}

/// A parsed `config.txt` that can be edited and rendered back losslessly.
#[derive(Debug, Clone)]
pub struct IniDocument {
    /// The text as parsed; untouched pieces are slices of it.
    source: String,
    /// Line break used where there is no neighbouring line to copy one from.
    newline: &'static str,
    has_bom: bool,
    /// BOM plus comments and blank lines before the first header.
    preamble: Piece,
    sections: Vec<Section>,
    /// Lower-cased section name -> index into `sections`.
    by_name: HashMap<String, usize>,
    /// The section named exactly `DEFAULT` (configparser compares it case-sensitively).
    default_section: Option<usize>,
}

#[derive(Debug, Clone)]
struct Section {
    name: Str,
    header: Piece,
    /// Comments and blank lines between the header and the first option.
    leading: Piece,
    options: Vec<OptionNode>,
    /// Lower-cased option name -> index into `options`.
    by_key: HashMap<String, usize>,
    /// Line breaks in the header, `leading` and all options, so that line
    /// numbers can be found without scanning the text.
    breaks: usize,
}

#[derive(Debug, Clone)]
struct OptionNode {
    key: Str,
    raw_value: Str,
    /// The option line, its continuation lines, and the comments and blank
    /// lines between them: everything `set` replaces and `remove` deletes.
    text: Piece,
    /// Comments and blank lines after the value, up to the next option or
    /// header. They belong to whatever follows, so edits leave them alone.
    trailing: Piece,
}

/// Text that is either still a slice of the parsed source or was written by an edit.
#[derive(Debug, Clone)]
enum Str {
    Source { start: usize, end: usize },
    Owned(String),
}

impl Str {
    fn as_str<'a>(&'a self, source: &'a str) -> &'a str {
        match self {
            Str::Source { start, end } => &source[*start..*end],
            Str::Owned(text) => text,
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Str::Source { start, end } => start == end,
            Str::Owned(text) => text.is_empty(),
        }
    }
}

/// A run of whole lines of the document (only the last line of the file may
/// lack its line break), with its line-break count cached.
#[derive(Debug, Clone)]
struct Piece {
    text: Str,
    breaks: usize,
}

impl Piece {
    fn empty() -> Self {
        Piece {
            text: Str::Source { start: 0, end: 0 },
            breaks: 0,
        }
    }

    fn source(source: &str, start: usize, end: usize) -> Self {
        Piece {
            text: Str::Source { start, end },
            breaks: count_breaks(&source[start..end]),
        }
    }

    fn owned(text: String) -> Self {
        let breaks = count_breaks(&text);
        Piece {
            text: Str::Owned(text),
            breaks,
        }
    }

    fn as_str<'a>(&'a self, source: &'a str) -> &'a str {
        self.text.as_str(source)
    }

    fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn push_str(&mut self, source: &str, tail: &str) {
        let mut text = String::with_capacity(self.as_str(source).len() + tail.len());
        text.push_str(self.as_str(source));
        text.push_str(tail);
        *self = Piece::owned(text);
    }
}

impl Section {
    fn recount(&mut self) {
        self.breaks = self.header.breaks
            + self.leading.breaks
            + self
                .options
                .iter()
                .map(|o| o.text.breaks + o.trailing.breaks)
                .sum::<usize>();
    }
}

/// Python's `str.isspace()`, which is also what `str.strip()` and the regex
/// `\s` use: Unicode White_Space plus the four ASCII information separators.
fn is_py_space(c: char) -> bool {
    crate::spec::writable::is_python_whitespace(c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// configparser's `optionxform` (`str.lower`). Rust implements the same full
/// Unicode lower-casing (including U+0130 and final sigma).
fn py_lower(s: &str) -> String {
    s.to_lowercase()
}

fn leading_space(s: &str) -> &str {
    &s[..s.len() - s.trim_start_matches(is_py_space).len()]
}

fn count_breaks(s: &str) -> usize {
    let bytes = s.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count()
}

fn line_terminator(s: &str) -> &'static str {
    if s.ends_with("\r\n") {
        "\r\n"
    } else if s.ends_with('\n') {
        "\n"
    } else if s.ends_with('\r') {
        "\r"
    } else {
        ""
    }
}

fn first_line(s: &str) -> &str {
    &s[..s.find(['\r', '\n']).unwrap_or(s.len())]
}

/// The last line of `s` without its terminator.
fn last_line(s: &str) -> &str {
    let body = &s[..s.len() - line_terminator(s).len()];
    match body.rfind(['\r', '\n']) {
        Some(i) => &body[i + 1..],
        None => body,
    }
}

struct LineSpan {
    start: usize,
    content_end: usize,
    end: usize,
}

/// Lines as Python's universal-newline reading sees them: `\r\n`, `\r` and
/// `\n` all end a line (tldw_server reads the file with `ConfigParser.read`).
fn line_spans(text: &str, from: usize) -> impl Iterator<Item = LineSpan> + '_ {
    let bytes = text.as_bytes();
    let mut pos = from;
    std::iter::from_fn(move || {
        if pos >= bytes.len() {
            return None;
        }
        let start = pos;
        let (content_end, end) = match bytes[start..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            None => (bytes.len(), bytes.len()),
            Some(offset) => {
                let at = start + offset;
                if bytes[at] == b'\r' && bytes.get(at + 1) == Some(&b'\n') {
                    (at, at + 2)
                } else {
                    (at, at + 1)
                }
            }
        };
        pos = end;
        Some(LineSpan {
            start,
            content_end,
            end,
        })
    })
}

/// The option being read: configparser keeps appending lines to it until a
/// line that is neither blank, a comment, nor indented deeper shows up.
struct OpenOption<'t> {
    key: (usize, usize),
    first_value: (usize, usize),
    more_value: Vec<&'t str>,
    text_start: usize,
}

impl OpenOption<'_> {
    /// `'\n'.join(lines).rstrip()`: continuation lines are stripped and never
    /// end in whitespace, so only trailing blank lines can go.
    fn raw_value(mut self, text: &str) -> Str {
        while self.more_value.last() == Some(&"") {
            self.more_value.pop();
        }
        let (start, end) = self.first_value;
        if self.more_value.is_empty() {
            return Str::Source { start, end };
        }
        Str::Owned(format!(
            "{}\n{}",
            &text[start..end],
            self.more_value.join("\n")
        ))
    }
}

impl IniDocument {
    /// Reads `text` the way tldw_server's `configparser.ConfigParser().read()`
    /// does, keeping every byte for [`render`](Self::render).
    ///
    /// Deliberate differences from configparser: a leading UTF-8 byte-order
    /// mark is skipped (see [`has_bom`](Self::has_bom)); two sections whose
    /// names differ only by case are an error; a repeated `[DEFAULT]` header is
    /// a duplicate section (configparser merges it); and the first problem is
    /// reported even where configparser would report a later fatal one first.
    pub fn parse(text: &str) -> Result<IniDocument, IniParseError> {
        let body_start = if text.starts_with(BOM) {
            BOM.len_utf8()
        } else {
            0
        };
        let mut preamble = None;
        let mut sections: Vec<Section> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut section_lines: Vec<usize> = Vec::new();
        // Duplicate sections are errors, so duplicate options can only occur
        // within the section being read: its option lines are enough.
        let mut option_lines: Vec<usize> = Vec::new();
        let mut open: Option<OpenOption<'_>> = None;
        let mut indent_level = 0usize;
        // End of the last header, option or continuation line: comments and
        // blank lines after it belong to it until something significant comes.
        let mut trivia_start = 0usize;

        for (index, span) in line_spans(text, body_start).enumerate() {
            let line = index + 1;
            let content = &text[span.start..span.content_end];
            let stripped = py_strip(content);
            if stripped.starts_with(['#', ';']) {
                continue;
            }
            if stripped.is_empty() {
                if let Some(option) = open.as_mut() {
                    option.more_value.push("");
                }
                continue;
            }
            let indent = content.chars().take_while(|&c| is_py_space(c)).count();
            if let Some(option) = open.as_mut()
                && indent > indent_level
            {
                option.more_value.push(stripped);
                trivia_start = span.end;
                continue;
            }
            indent_level = indent;
            close_trivia(
                text,
                &mut preamble,
                &mut sections,
                open.take(),
                trivia_start,
                span.start,
            );
            trivia_start = span.end;
            let stripped_start =
                span.start + (content.len() - content.trim_start_matches(is_py_space).len());

            if let Some(name) = section_header(stripped) {
                let lower = py_lower(name);
                if let Some(&existing) = by_name.get(&lower) {
                    let first = sections[existing].name.as_str(text);
                    return Err(if first == name {
                        IniParseError::DuplicateSection {
                            section: name.to_owned(),
                            first_line: section_lines[existing],
                            second_line: line,
                        }
                    } else {
                        IniParseError::AmbiguousSection {
                            first: first.to_owned(),
                            first_line: section_lines[existing],
                            second: name.to_owned(),
                            second_line: line,
                        }
                    });
                }
                by_name.insert(lower, sections.len());
                section_lines.push(line);
                option_lines.clear();
                sections.push(Section {
                    name: Str::Source {
                        start: stripped_start + 1,
                        end: stripped_start + 1 + name.len(),
                    },
                    header: Piece::source(text, span.start, span.end),
                    leading: Piece::empty(),
                    options: Vec::new(),
                    by_key: HashMap::new(),
                    breaks: 0,
                });
                continue;
            }

            let Some(section) = sections.last_mut() else {
                return Err(IniParseError::MissingSectionHeader { line });
            };
            let Some(delimiter) = stripped.find(['=', ':']) else {
                return Err(IniParseError::InvalidLine { line });
            };
            let key = stripped[..delimiter].trim_end_matches(is_py_space);
            if key.is_empty() {
                return Err(IniParseError::InvalidLine { line });
            }
            let lower = py_lower(key);
            if let Some(&existing) = section.by_key.get(&lower) {
                return Err(IniParseError::DuplicateOption {
                    section: section.name.as_str(text).to_owned(),
                    key: key.to_owned(),
                    first_line: option_lines[existing],
                    second_line: line,
                });
            }
            section.by_key.insert(lower, section.options.len());
            option_lines.push(line);
            let after = &stripped[delimiter + 1..];
            let value = after.trim_start_matches(is_py_space);
            let value_start = stripped_start + delimiter + 1 + (after.len() - value.len());
            open = Some(OpenOption {
                key: (stripped_start, stripped_start + key.len()),
                first_value: (value_start, value_start + value.len()),
                more_value: Vec::new(),
                text_start: span.start,
            });
        }
        close_trivia(
            text,
            &mut preamble,
            &mut sections,
            open.take(),
            trivia_start,
            text.len(),
        );
        for section in &mut sections {
            section.recount();
        }
        let default_section = sections
            .iter()
            .position(|s| s.name.as_str(text) == DEFAULT_SECTION);
        Ok(IniDocument {
            source: text.to_owned(),
            newline: first_line_break(text),
            has_bom: body_start > 0,
            preamble: preamble
                .expect("close_trivia sets the preamble at the first header or at the end"),
            sections,
            by_name,
            default_section,
        })
    }

    /// Whether the text starts with a UTF-8 byte-order mark. It is kept on
    /// render, but tldw_server reads `config.txt` without `utf-8-sig`, so
    /// configparser itself would reject such a file (line 1 would not start
    /// with `[`); callers may want to warn.
    pub fn has_bom(&self) -> bool {
        self.has_bom
    }

    /// The value tldw_server would get from `config.get(section, key)`:
    /// `%%` and `%(name)s` expanded, options of `[DEFAULT]` visible from every
    /// section. The section is matched exactly, the key case-insensitively. `Ok(None)` if
    /// the section or the option does not exist.
    pub fn get(&self, section: &str, key: &str) -> Result<Option<String>, IniInterpolationError> {
        let Some(index) = self.find_section(section) else {
            return Ok(None);
        };
        let Some((key, raw)) = self.lookup(index, &py_lower(key)) else {
            return Ok(None);
        };
        let mut value = String::with_capacity(raw.len());
        self.interpolate(index, key, raw, &mut value, 1)?;
        Ok(Some(value))
    }

    /// The option physically present in `section` (no `[DEFAULT]` fallback,
    /// since this is the line that `set` and `remove` would touch).
    pub fn entry(&self, section: &str, key: &str) -> Option<IniEntry<'_>> {
        let index = self.find_section(section)?;
        let option = *self.sections[index].by_key.get(&py_lower(key))?;
        let mut line = 1 + self.preamble.breaks;
        line += self.sections[..index]
            .iter()
            .map(|s| s.breaks)
            .sum::<usize>();
        let section = &self.sections[index];
        line += section.header.breaks + section.leading.breaks;
        line += section.options[..option]
            .iter()
            .map(|o| o.text.breaks + o.trailing.breaks)
            .sum::<usize>();
        Some(self.make_entry(section, &section.options[option], line))
    }

    /// Every option in file order, `[DEFAULT]` included where it stands.
    pub fn entries(&self) -> impl Iterator<Item = IniEntry<'_>> {
        let mut section_line = 1 + self.preamble.breaks;
        self.sections.iter().flat_map(move |section| {
            let mut line = section_line + section.header.breaks + section.leading.breaks;
            section_line += section.breaks;
            section.options.iter().map(move |option| {
                let entry = self.make_entry(section, option, line);
                line += option.text.breaks + option.trailing.breaks;
                entry
            })
        })
    }

    /// Section names as written, in file order. Unlike configparser's
    /// `sections()`, this includes `DEFAULT` when the file has that header.
    pub fn sections(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|s| s.name.as_str(&self.source))
    }

    /// Sets `key` in `section` to `value`, which `get` will then return
    /// verbatim (`%` is written as `%%`).
    ///
    /// An existing option keeps its spelling, indentation and delimiter
    /// spacing; only its value text changes, and a multi-line value (with the
    /// comments and blank lines inside it) becomes one line. Setting the value
    /// it already has changes nothing. A new option goes right after the last
    /// option of the section (before the comments that lead into the next
    /// section), a new section at the end of the file after a blank line.
    /// Keys are matched case-insensitively, as configparser's `optionxform` does; sections
    /// case-sensitively.
    pub fn set(&mut self, section: &str, key: &str, value: &str) -> Result<(), IniValueError> {
        let encoded = encode_value(value).map_err(|e| e.for_option(section, key))?;
        let lower = py_lower(key);
        match self.find_section(section) {
            Some(index) => match self.sections[index].by_key.get(&lower) {
                Some(&option) => self.replace_value(index, option, encoded),
                None => {
                    validate_key(section, key)?;
                    self.append_option(index, key, lower, encoded);
                }
            },
            None => {
                validate_section(section)?;
                if self.section_differing_by_case(section).is_some() {
                    return Err(IniValueError::InvalidSection {
                        section: section.to_owned(),
                        reason: "differs only by letter case from a section of the file; \
                                 configparser would read them as two sections",
                    });
                }
                validate_key(section, key)?;
                self.append_section(section, key, lower, encoded);
            }
        }
        Ok(())
    }

    /// Deletes the lines of `key` in `section` (not a `[DEFAULT]` option it
    /// may inherit). Comments around it stay. Returns whether it existed.
    pub fn remove(&mut self, section: &str, key: &str) -> bool {
        let Some(index) = self.find_section(section) else {
            return false;
        };
        let source = &self.source;
        let section = &mut self.sections[index];
        let Some(option) = section.by_key.remove(&py_lower(key)) else {
            return false;
        };
        let removed = section.options.remove(option);
        for position in section.by_key.values_mut() {
            if *position > option {
                *position -= 1;
            }
        }
        let trailing = removed.trailing.as_str(source);
        if !trailing.is_empty() {
            let (before, slot) = match option.checked_sub(1) {
                Some(previous) => {
                    let previous = &mut section.options[previous];
                    (&mut previous.text, &mut previous.trailing)
                }
                None => (&mut section.header, &mut section.leading),
            };
            // A lone-CR line end followed by an LF blank line would fuse into
            // one CRLF break and swallow that blank line: make it CRLF first.
            let neighbour = if slot.is_empty() { before } else { &mut *slot };
            if neighbour.as_str(source).ends_with('\r') && trailing.starts_with('\n') {
                neighbour.push_str(source, "\n");
            }
            slot.push_str(source, trailing);
        }
        section.recount();
        true
    }

    /// The document as text: byte-identical to the parsed input when nothing
    /// was changed.
    pub fn render(&self) -> String {
        let source = self.source.as_str();
        let mut out = String::with_capacity(source.len() + 256);
        out.push_str(self.preamble.as_str(source));
        for section in &self.sections {
            out.push_str(section.header.as_str(source));
            out.push_str(section.leading.as_str(source));
            for option in &section.options {
                out.push_str(option.text.as_str(source));
                out.push_str(option.trailing.as_str(source));
            }
        }
        out
    }

    /// The section named exactly `name`: configparser compares section names case-sensitively.
    /// (`by_name` is keyed lower-cased because the parser refuses two sections that differ only
    /// by case.)
    fn find_section(&self, name: &str) -> Option<usize> {
        self.by_name
            .get(&py_lower(name))
            .copied()
            .filter(|&index| self.sections[index].name.as_str(&self.source) == name)
    }

    /// A section whose name differs from `name` only by letter case.
    pub fn section_differing_by_case(&self, name: &str) -> Option<&str> {
        let index = *self.by_name.get(&py_lower(name))?;
        let existing = self.sections[index].name.as_str(&self.source);
        (existing != name).then_some(existing)
    }

    /// configparser's lookup chain for a lower-cased key: the section, then
    /// `[DEFAULT]`. Returns the key as written and the raw value.
    fn lookup(&self, section: usize, lower: &str) -> Option<(&str, &str)> {
        let source = self.source.as_str();
        std::iter::once(section)
            .chain(self.default_section)
            .find_map(|index| {
                let section = &self.sections[index];
                let option = &section.options[*section.by_key.get(lower)?];
                Some((option.key.as_str(source), option.raw_value.as_str(source)))
            })
    }

    fn make_entry<'a>(
        &'a self,
        section: &'a Section,
        option: &'a OptionNode,
        line: usize,
    ) -> IniEntry<'a> {
        IniEntry {
            section: section.name.as_str(&self.source),
            key: option.key.as_str(&self.source),
            raw_value: option.raw_value.as_str(&self.source).to_owned(),
            line,
        }
    }

    /// configparser's `BasicInterpolation._interpolate_some`: references are
    /// looked up in the requested section (then `[DEFAULT]`) at every depth.
    fn interpolate(
        &self,
        section: usize,
        key: &str,
        mut rest: &str,
        out: &mut String,
        depth: usize,
    ) -> Result<(), IniInterpolationError> {
        let section_name = || self.sections[section].name.as_str(&self.source).to_owned();
        let syntax_error = || IniInterpolationError::Syntax {
            section: section_name(),
            key: key.to_owned(),
        };
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(IniInterpolationError::TooDeep {
                section: section_name(),
                key: key.to_owned(),
            });
        }
        while let Some(percent) = rest.find('%') {
            out.push_str(&rest[..percent]);
            rest = &rest[percent..];
            let advance = match rest.as_bytes().get(1) {
                Some(b'%') => {
                    out.push('%');
                    2
                }
                Some(b'(') => {
                    // `%\(([^)]+)\)s`: the name runs to the first `)`.
                    let close = rest[2..]
                        .find(')')
                        .map(|i| i + 2)
                        .ok_or_else(syntax_error)?;
                    if close == 2 || rest.as_bytes().get(close + 1) != Some(&b's') {
                        return Err(syntax_error());
                    }
                    let reference = py_lower(&rest[2..close]);
                    let Some((_, value)) = self.lookup(section, &reference) else {
                        return Err(IniInterpolationError::MissingReference {
                            section: section_name(),
                            key: key.to_owned(),
                            reference,
                        });
                    };
                    if value.contains('%') {
                        self.interpolate(section, key, value, out, depth + 1)?;
                    } else {
                        out.push_str(value);
                    }
                    close + 2
                }
                _ => return Err(syntax_error()),
            };
            rest = &rest[advance..];
        }
        out.push_str(rest);
        Ok(())
    }

    fn replace_value(&mut self, index: usize, option: usize, encoded: String) {
        let source = self.source.as_str();
        let section = &mut self.sections[index];
        let node = &mut section.options[option];
        if node.raw_value.as_str(source) == encoded {
            return;
        }
        let text = node.text.as_str(source);
        let line = first_line(text);
        let delimiter = line
            .find(['=', ':'])
            .expect("a parsed or written option line always has a delimiter");
        let after = &line[delimiter + 1..];
        let spacing_after = leading_space(after);
        let had_value = spacing_after.len() < after.len();
        let mut new_text = String::with_capacity(line.len() + encoded.len() + 2);
        new_text.push_str(&line[..=delimiter]);
        if !encoded.is_empty() {
            if had_value {
                new_text.push_str(spacing_after);
            } else if line[..delimiter].ends_with(is_py_space) || line.as_bytes()[delimiter] == b':'
            {
                // `key =` or `key:` that was empty: match the usual `key = value` look.
                new_text.push(' ');
            }
            new_text.push_str(&encoded);
        }
        new_text.push_str(line_terminator(text));
        node.text = Piece::owned(new_text);
        node.raw_value = Str::Owned(encoded);
        section.recount();
    }

    fn append_option(&mut self, index: usize, key: &str, lower: String, encoded: String) {
        let source = self.source.as_str();
        // The new line must not continue the previous option (so no deeper than
        // it) and must not turn the next line into its own continuation (so no
        // shallower than it): the last option's indentation satisfies both, and
        // after a bare header only the next header's indentation matters.
        let indent = match self.sections[index].options.last() {
            Some(last) => leading_space(last.text.as_str(source)).to_owned(),
            None => self
                .sections
                .get(index + 1)
                .map(|next| leading_space(next.header.as_str(source)).to_owned())
                .unwrap_or_default(),
        };
        let newline = self.newline;
        let section = &mut self.sections[index];
        let (anchor, slot) = match section.options.last_mut() {
            Some(last) => (&mut last.text, &mut last.trailing),
            None => (&mut section.header, &mut section.leading),
        };
        let trailing = std::mem::replace(slot, Piece::empty());
        let mut text = indent;
        text.push_str(&option_line(key, &encoded));
        match line_terminator(anchor.as_str(source)) {
            // The anchor is the last line of a file without a final newline:
            // keep it that way by moving the missing break in front of us.
            "" => anchor.push_str(source, newline),
            terminator => text.push_str(terminator),
        }
        section.options.push(OptionNode {
            key: Str::Owned(key.to_owned()),
            raw_value: Str::Owned(encoded),
            text: Piece::owned(text),
            trailing,
        });
        section.by_key.insert(lower, section.options.len() - 1);
        section.recount();
    }

    fn append_section(&mut self, name: &str, key: &str, lower: String, encoded: String) {
        let source = self.source.as_str();
        let mut newline = self.newline;
        let mut final_newline = true;
        let only_bom = self.sections.is_empty()
            && self
                .preamble
                .as_str(source)
                .strip_prefix(BOM)
                .unwrap_or(self.preamble.as_str(source))
                .is_empty();
        if !only_bom {
            let last = last_nonempty_piece(&mut self.preamble, &mut self.sections)
                .expect("a document with content has a non-empty piece");
            match line_terminator(last.as_str(source)) {
                "" => {
                    last.push_str(source, newline);
                    final_newline = false;
                }
                // Copy the last line's break: a lone CR followed by our LF
                // would fuse into one CRLF.
                terminator => newline = terminator,
            }
            let blank_already = py_strip(last_line(last.as_str(source))).is_empty();
            if !blank_already {
                let slot = match self.sections.last_mut() {
                    Some(section) => match section.options.last_mut() {
                        Some(option) => &mut option.trailing,
                        None => &mut section.leading,
                    },
                    None => &mut self.preamble,
                };
                slot.push_str(source, newline);
            }
            if let Some(section) = self.sections.last_mut() {
                section.recount();
            }
        }
        let mut text = option_line(key, &encoded);
        if final_newline {
            text.push_str(newline);
        }
        let mut section = Section {
            name: Str::Owned(name.to_owned()),
            header: Piece::owned(format!("[{name}]{newline}")),
            leading: Piece::empty(),
            options: vec![OptionNode {
                key: Str::Owned(key.to_owned()),
                raw_value: Str::Owned(encoded),
                text: Piece::owned(text),
                trailing: Piece::empty(),
            }],
            by_key: HashMap::from([(lower, 0)]),
            breaks: 0,
        };
        section.recount();
        if name == DEFAULT_SECTION {
            self.default_section = Some(self.sections.len());
        }
        self.by_name.insert(py_lower(name), self.sections.len());
        self.sections.push(section);
    }
}

/// Gives the trivia between the last significant line and `upto` to whatever
/// that line was, and files the option that was open.
fn close_trivia(
    text: &str,
    preamble: &mut Option<Piece>,
    sections: &mut [Section],
    open: Option<OpenOption<'_>>,
    trivia_start: usize,
    upto: usize,
) {
    let Some(section) = sections.last_mut() else {
        *preamble = Some(Piece::source(text, 0, upto));
        return;
    };
    let trivia = Piece::source(text, trivia_start, upto);
    match open {
        Some(option) => {
            let node = OptionNode {
                key: Str::Source {
                    start: option.key.0,
                    end: option.key.1,
                },
                text: Piece::source(text, option.text_start, trivia_start),
                raw_value: option.raw_value(text),
                trailing: trivia,
            };
            section.options.push(node);
        }
        None => section.leading = trivia,
    }
}

fn last_nonempty_piece<'a>(
    preamble: &'a mut Piece,
    sections: &'a mut [Section],
) -> Option<&'a mut Piece> {
    // Every header is non-empty, so the search never leaves the last section.
    let Some(section) = sections.last_mut() else {
        return (!preamble.is_empty()).then_some(preamble);
    };
    for option in section.options.iter_mut().rev() {
        if !option.trailing.is_empty() {
            return Some(&mut option.trailing);
        }
        if !option.text.is_empty() {
            return Some(&mut option.text);
        }
    }
    if !section.leading.is_empty() {
        return Some(&mut section.leading);
    }
    Some(&mut section.header)
}

/// configparser's `SECTCRE` (`\[(?P<header>.+)\]`, matched at the start):
/// the greedy `.+` runs to the last `]`, and anything after it is ignored.
fn section_header(stripped: &str) -> Option<&str> {
    let rest = stripped.strip_prefix('[')?;
    let close = rest.rfind(']')?;
    (close > 0).then(|| &rest[..close])
}

fn first_line_break(text: &str) -> &'static str {
    match text.find(['\r', '\n']) {
        Some(i) if text[i..].starts_with("\r\n") => "\r\n",
        Some(i) if text[i..].starts_with('\r') => "\r",
        _ => "\n",
    }
}

fn option_line(key: &str, encoded: &str) -> String {
    if encoded.is_empty() {
        format!("{key} =")
    } else {
        format!("{key} = {encoded}")
    }
}

/// Encodes `value` so that configparser's `get` returns it unchanged: `%`
/// becomes `%%`. Refuses what configparser cannot give back: line breaks
/// (they would end the option) and leading or trailing whitespace (it is
/// stripped on read, by Python's definition of whitespace).
pub fn encode_value(value: &str) -> Result<String, IniValueError> {
    let (section, key) = (String::new(), String::new());
    match crate::spec::writable::config_value(value) {
        Ok(()) => Ok(value.replace('%', "%%")),
        Err(ConfigRefusal::LineBreak) => Err(IniValueError::LineBreak { section, key }),
        Err(ConfigRefusal::SurroundingWhitespace) => {
            Err(IniValueError::SurroundingWhitespace { section, key })
        }
    }
}

fn validate_section(section: &str) -> Result<(), IniValueError> {
    let reason = if section.is_empty() {
        "is empty"
    } else if section.contains(['\n', '\r']) {
        "contains a line break"
    } else if section.contains(['[', ']']) {
        "contains '[' or ']'"
    } else if section.contains(['=', ':']) {
        "contains '=' or ':'"
    } else if section.starts_with(is_py_space) || section.ends_with(is_py_space) {
        "starts or ends with whitespace"
    } else if section != DEFAULT_SECTION && py_lower(section) == "default" {
        "differs from DEFAULT only by case, and configparser would treat it as an ordinary section"
    } else {
        return Ok(());
    };
    Err(IniValueError::InvalidSection {
        section: section.to_owned(),
        reason,
    })
}

fn validate_key(section: &str, key: &str) -> Result<(), IniValueError> {
    let reason = if key.is_empty() {
        "is empty"
    } else if key.contains(['\n', '\r']) {
        "contains a line break"
    } else if key.contains(['=', ':']) {
        "contains '=' or ':', which configparser reads as the delimiter"
    } else if key.contains(['[', ']']) {
        "contains '[' or ']'"
    } else if key.starts_with(['#', ';']) {
        "starts with a comment character"
    } else if key.starts_with(is_py_space) || key.ends_with(is_py_space) {
        "starts or ends with whitespace"
    } else {
        return Ok(());
    };
    Err(IniValueError::InvalidKey {
        section: section.to_owned(),
        key: key.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests;
