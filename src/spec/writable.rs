//! What the writers can put into `.env` and config.txt so that every reader gets it back
//! unchanged. The rules are pure, so `validate` and `plan` refuse exactly what `apply` would
//! refuse, at the YAML line, before anything is written; the writers in
//! `providers::{env_file, config_file}` call the same functions.

use std::fmt;

/// How a value is written after `=` in an env file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quoting {
    Bare,
    Single,
    Double,
}

/// Why a value cannot be written to an env file so that every reader gets it back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwritableReason {
    /// CR or LF, or another character `str.splitlines()` breaks at, so the preflight would cut
    /// the line there.
    LineBreak(char),
    Nul,
    /// `${` would be expanded by python-dotenv, even inside single quotes.
    Interpolation,
    /// It needs quotes but holds a backslash or both quote kinds.
    NoCommonQuoting,
}

impl fmt::Display for UnwritableReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineBreak(character) => write!(
                formatter,
                "it contains the line break U+{:04X}, and the preflight and compose read env files \
                 line by line",
                u32::from(*character)
            ),
            Self::Nul => formatter.write_str("it contains a NUL character, which no environment can hold"),
            Self::Interpolation => formatter.write_str(
                "it contains `${`, which python-dotenv expands even inside single quotes",
            ),
            Self::NoCommonQuoting => formatter.write_str(
                "it needs quotes (it has whitespace or starts or ends with a quote) but contains a \
                 backslash or both quote kinds, and no quoting reads back the same in python-dotenv \
                 and in the production preflight",
            ),
        }
    }
}

/// Characters `str.splitlines()` ends a line at; the preflight reads lines with it.
pub const LINE_BREAKS: [char; 10] = [
    '\n', '\r', '\u{b}', '\u{c}', '\u{1c}', '\u{1d}', '\u{1e}', '\u{85}', '\u{2028}', '\u{2029}',
];

/// Whether `value` can be written to an env file at all, whatever the quoting of its line.
pub fn env_value(value: &str) -> Result<(), UnwritableReason> {
    refuse_unwritable(value)?;
    choose_quoting(value, Quoting::Bare)
        .map(|_| ())
        .ok_or(UnwritableReason::NoCommonQuoting)
}

/// The refusals no quoting can help with.
pub fn refuse_unwritable(value: &str) -> Result<(), UnwritableReason> {
    if let Some(character) = value
        .chars()
        .find(|character| LINE_BREAKS.contains(character))
    {
        return Err(UnwritableReason::LineBreak(character));
    }
    if value.contains('\0') {
        return Err(UnwritableReason::Nul);
    }
    if value.contains("${") {
        return Err(UnwritableReason::Interpolation);
    }
    Ok(())
}

/// `preferred` when it carries `value` for every reader, else the first of bare, single and
/// double quotes that does.
pub fn choose_quoting(value: &str, preferred: Quoting) -> Option<Quoting> {
    [preferred, Quoting::Bare, Quoting::Single, Quoting::Double]
        .into_iter()
        .find(|&quoting| carries(value, quoting))
}

/// Whether every reader gets `value` back from it written with `quoting`, the value having
/// passed [`refuse_unwritable`].
pub fn carries(value: &str, quoting: Quoting) -> bool {
    match quoting {
        // No whitespace rules out python-dotenv's trimming and comment cutting; no edge quote
        // keeps python-dotenv from reading a quoted value and the preflight from calling it an
        // unmatched quote.
        Quoting::Bare => {
            value.is_empty()
                || (!value.chars().any(is_python_whitespace)
                    && !value.starts_with(['\'', '"'])
                    && !value.ends_with(['\'', '"']))
        }
        // Without the quote and a backslash nothing inside is decoded by python-dotenv, and the
        // preflight strips exactly the outer pair.
        Quoting::Single => !value.contains(['\'', '\\']),
        Quoting::Double => !value.contains(['"', '\\']),
    }
}

/// A name of the form `[A-Za-z_][A-Za-z0-9_]*`, which the production preflight requires.
pub fn is_portable_name(key: &str) -> bool {
    let mut characters = key.chars();
    characters
        .next()
        .is_some_and(|first| first == '_' || first.is_ascii_alphabetic())
        && characters.all(|character| character == '_' || character.is_ascii_alphanumeric())
}

/// Python's `\s` and `str.isspace()`: Unicode white space plus U+001C..U+001F.
pub fn is_python_whitespace(character: char) -> bool {
    character.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&character)
}

/// Why configparser would not give `value` back unchanged, if it would not.
pub fn config_value(value: &str) -> Result<(), ConfigRefusal> {
    if value.contains(['\n', '\r']) {
        return Err(ConfigRefusal::LineBreak);
    }
    if value.starts_with(is_python_whitespace) || value.ends_with(is_python_whitespace) {
        return Err(ConfigRefusal::SurroundingWhitespace);
    }
    Ok(())
}

/// Why a config.txt value cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigRefusal {
    LineBreak,
    SurroundingWhitespace,
}

impl fmt::Display for ConfigRefusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::LineBreak => {
                "it contains a line break (CR or LF), and configparser would end the option there"
            }
            Self::SurroundingWhitespace => {
                "it starts or ends with whitespace, which configparser strips when reading"
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_writable_when_some_quoting_carries_it() {
        assert_eq!(env_value("plain"), Ok(()));
        assert_eq!(env_value("two words"), Ok(()));
        assert_eq!(env_value("it's fine"), Ok(()));
        assert_eq!(env_value("say \"hi\""), Ok(()));
        assert_eq!(
            env_value("a 'b' \"c\""),
            Err(UnwritableReason::NoCommonQuoting)
        );
        assert_eq!(
            env_value("back\\ slash"),
            Err(UnwritableReason::NoCommonQuoting)
        );
        assert_eq!(env_value("${HOME}"), Err(UnwritableReason::Interpolation));
        assert_eq!(
            env_value("a\u{2028}b"),
            Err(UnwritableReason::LineBreak('\u{2028}'))
        );
        assert_eq!(env_value("a\0b"), Err(UnwritableReason::Nul));
    }

    #[test]
    fn config_values_keep_their_edges_and_stay_on_one_line() {
        assert_eq!(config_value("a b"), Ok(()));
        assert_eq!(
            config_value(" a"),
            Err(ConfigRefusal::SurroundingWhitespace)
        );
        assert_eq!(
            config_value("a\u{a0}"),
            Err(ConfigRefusal::SurroundingWhitespace)
        );
        assert_eq!(config_value("a\nb"), Err(ConfigRefusal::LineBreak));
    }
}
