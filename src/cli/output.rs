//! Printing: data to stdout, people's text to stderr. Colour is decided per stream (`--color`,
//! `NO_COLOR`, and whether that stream is a terminal), so `plan > plan.txt` writes no escape
//! codes while the warnings on the terminal stay coloured. With `--log-format json` every line
//! on stderr is a JSON object shaped like the tracing log lines, so a log collector reads
//! stderr whole.

use std::collections::BTreeSet;
use std::io::Write;

use super::LogFormat;

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    stdout_color: bool,
    stderr_color: bool,
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy)]
pub enum Style {
    Error,
    Warning,
    Success,
    Add,
    Change,
    Remove,
    Dim,
    Bold,
}

/// The level a line on stderr carries in JSON form.
#[derive(Debug, Clone, Copy)]
enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

fn escape(style: Style, text: &str) -> String {
    let code = match style {
        Style::Error => "1;31",
        Style::Warning => "1;33",
        Style::Success => "1;32",
        Style::Add => "32",
        Style::Change => "33",
        Style::Remove => "31",
        Style::Dim => "2",
        Style::Bold => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

impl Printer {
    pub fn new(stdout_color: bool, stderr_color: bool, log_format: LogFormat) -> Printer {
        // JSON lines carry no escape codes, whatever `--color` says.
        let stderr_color = stderr_color && log_format == LogFormat::Text;
        Printer {
            stdout_color,
            stderr_color,
            log_format,
        }
    }

    /// Whether text bound for stderr is coloured.
    pub fn color(&self) -> bool {
        self.stderr_color
    }

    /// Whether stderr lines are JSON objects (`--log-format json`).
    pub fn json_logs(&self) -> bool {
        self.log_format == LogFormat::Json
    }

    /// Colours text bound for stderr (notes, warnings, errors, progress).
    pub fn paint(&self, style: Style, text: &str) -> String {
        if self.stderr_color {
            escape(style, text)
        } else {
            text.to_string()
        }
    }

    /// Colours text bound for stdout (plans, reports, tables).
    pub fn paint_stdout(&self, style: Style, text: &str) -> String {
        if self.stdout_color {
            escape(style, text)
        } else {
            text.to_string()
        }
    }

    /// Data for machines and pipes.
    pub fn stdout(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// Text for people.
    pub fn stderr(&self, text: &str) {
        self.emit(Level::Info, text);
    }

    fn emit(&self, level: Level, text: &str) {
        let mut err = std::io::stderr().lock();
        match self.log_format {
            LogFormat::Text => {
                let _ = err.write_all(text.as_bytes());
            }
            LogFormat::Json => {
                let message = text.trim_matches('\n');
                if message.trim().is_empty() {
                    return;
                }
                let line = serde_json::json!({
                    "timestamp": jiff::Timestamp::now().to_string(),
                    "level": level.as_str(),
                    "fields": { "message": message },
                    "target": "tldw_ops",
                });
                let _ = writeln!(err, "{line}");
            }
        }
        let _ = err.flush();
    }

    pub fn note(&self, text: &str) {
        self.emit(Level::Info, &format!("{text}\n"));
    }

    pub fn error(&self, text: &str) {
        let label = self.label(Style::Error, "error:");
        self.emit(Level::Error, &format!("{label}{text}\n"));
    }

    /// A warning, printed once per run: the same finding reached through several loads or
    /// stages (validation, the plan, a step) is said once.
    pub fn warning(&self, text: &str) {
        static PRINTED: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
        let first = PRINTED
            .lock()
            .map(|mut printed| printed.insert(text.to_string()))
            .unwrap_or(true);
        if !first {
            return;
        }
        let label = self.label(Style::Warning, "warning:");
        self.emit(Level::Warn, &format!("{label}{text}\n"));
    }

    /// The `error: ` prefix of a text line; a JSON line says it in its level instead.
    fn label(&self, style: Style, label: &str) -> String {
        match self.log_format {
            LogFormat::Text => format!("{} ", self.paint(style, label)),
            LogFormat::Json => String::new(),
        }
    }

    /// Rendered diagnostics (`error[code]: ...` blocks) on stderr, the severity heads and carets
    /// coloured when stderr is.
    pub fn diagnostics(&self, rendered: &str) {
        self.stderr(&self.paint_diagnostics(rendered));
    }

    fn paint_diagnostics(&self, rendered: &str) -> String {
        if !self.stderr_color {
            return rendered.to_string();
        }
        let mut out = String::with_capacity(rendered.len() + 64);
        let mut style = Style::Error;
        for line in rendered.split_inclusive('\n') {
            let body = line.trim_end_matches('\n');
            let ending = &line[body.len()..];
            let head = [("error[", Style::Error), ("warning[", Style::Warning)]
                .into_iter()
                .find(|(prefix, _)| body.starts_with(prefix));
            if let Some((_, head_style)) = head {
                style = head_style;
                match body.split_once("]: ") {
                    Some((code, message)) => {
                        out.push_str(&self.paint(style, &format!("{code}]:")));
                        out.push(' ');
                        out.push_str(&self.paint(Style::Bold, message));
                    }
                    None => out.push_str(&self.paint(style, body)),
                }
            } else if body.trim_start().starts_with("-->") {
                out.push_str(&self.paint(Style::Dim, body));
            } else if body.ends_with('^') && body.contains(" | ") {
                let (gutter, caret) = body.split_at(body.len() - 1);
                out.push_str(gutter);
                out.push_str(&self.paint(style, caret));
            } else {
                out.push_str(body);
            }
            out.push_str(ending);
        }
        out
    }
}

/// Colours for the renderers of text bound for stdout, following stdout's choice.
pub struct PrinterPaint<'a>(&'a Printer);

pub fn paint_adapter(printer: &Printer) -> PrinterPaint<'_> {
    PrinterPaint(printer)
}

impl crate::plan::render::Paint for PrinterPaint<'_> {
    fn add(&self, text: &str) -> String {
        self.0.paint_stdout(Style::Add, text)
    }
    fn change(&self, text: &str) -> String {
        self.0.paint_stdout(Style::Change, text)
    }
    fn remove(&self, text: &str) -> String {
        self.0.paint_stdout(Style::Remove, text)
    }
    fn dim(&self, text: &str) -> String {
        self.0.paint_stdout(Style::Dim, text)
    }
    fn bold(&self, text: &str) -> String {
        self.0.paint_stdout(Style::Bold, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = "warning[secret.file_mode]: readable by others\n  --> a.yaml:3:5\n  |\n3 | key: <value>\n  |     ^\n\n";

    #[test]
    fn diagnostics_are_painted_only_when_stderr_is_coloured() {
        let plain = Printer::new(true, false, LogFormat::Text);
        assert_eq!(plain.paint_diagnostics(RENDERED), RENDERED);
        let coloured = Printer::new(false, true, LogFormat::Text);
        let painted = coloured.paint_diagnostics(RENDERED);
        assert!(painted.starts_with("\x1b[1;33mwarning[secret.file_mode]:\x1b[0m "));
        assert!(
            painted.contains("  |     \x1b[1;33m^\x1b[0m\n"),
            "{painted:?}"
        );
        assert!(
            painted.contains("\x1b[2m  --> a.yaml:3:5\x1b[0m"),
            "{painted:?}"
        );
    }

    #[test]
    fn each_stream_has_its_own_colour_and_json_logs_have_none() {
        let printer = Printer::new(false, true, LogFormat::Text);
        assert_eq!(printer.paint_stdout(Style::Add, "+"), "+");
        assert_eq!(printer.paint(Style::Add, "+"), "\x1b[32m+\x1b[0m");
        let json = Printer::new(true, true, LogFormat::Json);
        assert_eq!(json.paint(Style::Error, "error:"), "error:");
        assert_eq!(json.paint_stdout(Style::Add, "+"), "\x1b[32m+\x1b[0m");
    }
}
