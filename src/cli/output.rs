//! Printing: data to stdout, people's text to stderr, with colour only when asked or on a
//! terminal.

use std::io::Write;

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    color: bool,
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

impl Printer {
    pub fn new(color: bool) -> Printer {
        Printer { color }
    }

    pub fn color(&self) -> bool {
        self.color
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        if !self.color {
            return text.to_string();
        }
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

    /// Data for machines and pipes.
    pub fn stdout(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// Text for people.
    pub fn stderr(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }

    pub fn note(&self, text: &str) {
        self.stderr(&format!("{text}\n"));
    }

    pub fn error(&self, text: &str) {
        self.stderr(&format!("{} {text}\n", self.paint(Style::Error, "error:")));
    }

    pub fn warning(&self, text: &str) {
        self.stderr(&format!(
            "{} {text}\n",
            self.paint(Style::Warning, "warning:")
        ));
    }
}

/// Colours for the plan renderer, following the printer's choice.
pub struct PrinterPaint<'a>(&'a Printer);

pub fn paint_adapter(printer: &Printer) -> PrinterPaint<'_> {
    PrinterPaint(printer)
}

impl crate::plan::render::Paint for PrinterPaint<'_> {
    fn add(&self, text: &str) -> String {
        self.0.paint(Style::Add, text)
    }
    fn change(&self, text: &str) -> String {
        self.0.paint(Style::Change, text)
    }
    fn remove(&self, text: &str) -> String {
        self.0.paint(Style::Remove, text)
    }
    fn dim(&self, text: &str) -> String {
        self.0.paint(Style::Dim, text)
    }
    fn bold(&self, text: &str) -> String {
        self.0.paint(Style::Bold, text)
    }
}
