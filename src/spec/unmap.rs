//! The inverse of [`super::mapping`]: reading a `.env` value back into the section of the
//! desired state that would write it. A value maps back only when tldw-ops would write exactly
//! that text, so that declaring the section reproduces the file byte for byte and the plan stays
//! empty. Anything else (tldw reads `True`, ` a, b` or `["a"]` too, but tldw-ops never writes
//! them) is refused with the reason, and callers keep the raw string under `env:` or explain.

use super::mapping::{RetentionKey, encode_origins};
use super::semantic::origin_problem;

/// `ALLOWED_ORIGINS` as the list `cors.allowed_origins` would write, or why it is not one.
pub fn origins(text: &str) -> Result<Vec<String>, String> {
    if text == "[]" {
        return Ok(Vec::new());
    }
    if text.starts_with('[') {
        return Err(
            "it is a JSON list; tldw-ops writes ALLOWED_ORIGINS comma-separated".to_string(),
        );
    }
    if text.is_empty() {
        return Err(
            "it is empty (tldw then uses its loopback defaults); `cors.allowed_origins: []` writes `[]`"
                .to_string(),
        );
    }
    let items: Vec<String> = text.split(',').map(str::to_string).collect();
    for item in &items {
        if item.is_empty() || item.trim() != item {
            return Err(
                "it has spaces or empty entries around its commas; tldw-ops writes `a,b` exactly"
                    .to_string(),
            );
        }
        if let Some(problem) = origin_problem(item) {
            return Err(format!("origin `{item}`: {problem}"));
        }
    }
    debug_assert_eq!(encode_origins(&items), text);
    Ok(items)
}

/// A boolean the way tldw-ops writes it: exactly `true` or `false`.
pub fn boolean(text: &str) -> Result<bool, String> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "`{text}` is not `true` or `false`, the only spellings tldw-ops writes (tldw also reads 1, yes, on, True...)"
        )),
    }
}

/// Whole days within tldw's range, written as tldw-ops writes them (`90`, no sign, no leading
/// zero).
pub fn retention_days(key: &RetentionKey, text: &str) -> Result<u64, String> {
    let days: u64 = text
        .parse()
        .ok()
        .filter(|days: &u64| days.to_string() == text)
        .ok_or_else(|| format!("`{text}` is not a whole number of days as tldw-ops writes it"))?;
    if days < key.min_days || days > key.max_days {
        return Err(format!(
            "{days} days is outside the {}..{} days tldw accepts for {}",
            key.min_days, key.max_days, key.env_name
        ));
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::mapping::retention_key;

    #[test]
    fn only_the_text_tldw_ops_writes_maps_back() {
        assert_eq!(
            origins("https://a.example.org,http://localhost:3000").unwrap(),
            vec!["https://a.example.org", "http://localhost:3000"]
        );
        assert_eq!(origins("[]").unwrap(), Vec::<String>::new());
        for text in [
            "",
            "https://a.example.org, https://b.example.org",
            "[\"https://a.example.org\"]",
            "https://a.example.org/",
            "a,,b",
        ] {
            assert!(origins(text).is_err(), "{text}");
        }
        assert_eq!(boolean("true"), Ok(true));
        assert!(boolean("True").is_err());
        assert!(boolean("1").is_err());
        let audit = retention_key("audit_logs").unwrap();
        assert_eq!(retention_days(audit, "120"), Ok(120));
        assert!(retention_days(audit, "0120").is_err());
        assert!(retention_days(audit, "10").is_err());
        assert!(retention_days(audit, "x").is_err());
    }
}
