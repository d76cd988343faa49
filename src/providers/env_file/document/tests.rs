use super::*;
use crate::spec::writable::LINE_BREAKS;
use proptest::prelude::*;
use std::collections::BTreeMap;

const ENV_EXAMPLE: &str = include_str!("../../../../fixtures/tldw_server/env.example");
const PRODUCTION_ENV_EXAMPLE: &str =
    include_str!("../../../../fixtures/tldw_server/production.env.example");

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
    "=", "#", "'", "\"", "\\", "$", "{", "}", " ", "\t", "\r", "\n", "\r\n", "export ", "export\t",
    "A", "B", "C", "Z", "a", "x", "\u{b}", "\u{c}", "\u{85}", "\u{a0}", "\u{1f}", "\u{feff}", "é",
    "\\n", "\\'", "\\\"", "A=", "B=", "\nA=", "\nB=", "\nC=", " # c", "${A}",
];

fn rich_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TEXT_TOKENS), 0..48)
        .prop_map(|tokens| tokens.concat())
}

const VALUE_TOKENS: &[&str] = &[
    "a", "Z", "0", " ", "\t", "#", "'", "\"", "\\", "$", "{", "}", "${", "=", ":", "/", "[", "]",
    ",", "é", "\u{a0}", "\u{1f}", "\u{feff}", "\n", "\r", "\0", "\u{b}", "\u{2028}",
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
