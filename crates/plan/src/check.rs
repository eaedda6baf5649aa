//! The diagnostics collector and the checks several sections share.

use crate::diag::Diagnostic;
use crate::locate::Locations;
use crate::model::*;

/// Collects diagnostics, each placed at its field's key or value.
pub(crate) struct Checker<'a> {
    pub file: &'a str,
    pub loc: Locations,
    pub out: Vec<Diagnostic>,
}

impl Checker<'_> {
    pub fn at(&mut self, path: &str, key: bool, message: impl Into<String>, help: Option<&str>) {
        // A block mapping or list starts on the line after its key: point at the key then.
        let pos = match (key, self.loc.key(path), self.loc.value(path)) {
            (true, k, v) => k.or(v),
            (false, Some(k), Some(v)) if v.line > k.line => Some(k),
            (false, k, v) => v.or(k),
        };
        let pos = pos.unwrap_or(crate::locate::Pos { line: 1, column: 1 });
        self.out.push(Diagnostic {
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            path: path.to_owned(),
            message: message.into(),
            help: help.map(str::to_owned),
        });
    }

    pub fn value(&mut self, path: &str, message: impl Into<String>) {
        self.at(path, false, message, None)
    }

    pub fn value_help(&mut self, path: &str, message: impl Into<String>, help: &str) {
        self.at(path, false, message, Some(help))
    }
}

/// A DNS-1123 label.
pub fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// A DNS-1123 subdomain.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && !s.is_empty() && s.split('.').all(|p| is_dns_label(p, 63))
}

/// An S3 bucket name, or why not.
pub fn s3_bucket_problem(s: &str) -> Option<&'static str> {
    if s.len() < 3 || s.len() > 63 {
        return Some("must be 3 to 63 characters long");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Some("may contain only lowercase letters, digits, '.' and '-'");
    }
    let (f, l) = (s.as_bytes()[0], s.as_bytes()[s.len() - 1]);
    if !f.is_ascii_alphanumeric() || !l.is_ascii_alphanumeric() {
        return Some("must begin and end with a letter or digit");
    }
    if s.contains("..") || s.contains(".-") || s.contains("-.") {
        return Some("must not contain '..', '.-' or '-.'");
    }
    if s.split('.').count() == 4 && s.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Some("must not be formatted as an IP address");
    }
    if s.starts_with("xn--")
        || s.starts_with("sthree-")
        || s.ends_with("-s3alias")
        || s.ends_with("--ol-s3")
    {
        return Some("uses a prefix or suffix that S3 reserves");
    }
    None
}

/// An RDS or ElastiCache identifier, or why not.
pub fn aws_identifier_problem(s: &str, max: usize) -> Option<String> {
    if s.is_empty() || s.len() > max {
        return Some(format!("must be 1 to {max} characters long"));
    }
    if !s.as_bytes()[0].is_ascii_alphabetic() {
        return Some("must begin with a letter".into());
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Some("may contain only letters, digits and '-'".into());
    }
    if s.ends_with('-') || s.contains("--") {
        return Some("must not end with '-' or contain '--'".into());
    }
    None
}

pub(crate) fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn is_quantity(s: &str) -> bool {
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    num_end > 0 && ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"].contains(&&s[num_end..])
}

pub(crate) fn check_resources(c: &mut Checker, path: &str, r: &Option<Resources>) {
    let Some(r) = r else { return };
    for (which, q) in [("requests", &r.requests), ("limits", &r.limits)] {
        if let Some(q) = q {
            if !is_quantity(&q.cpu) {
                c.value(
                    &format!("{path}.{which}.cpu"),
                    format!("`{}` is not a CPU quantity (like 500m or 2)", q.cpu),
                );
            }
            if !is_quantity(&q.memory) {
                c.value(
                    &format!("{path}.{which}.memory"),
                    format!(
                        "`{}` is not a memory quantity (like 512Mi or 4Gi)",
                        q.memory
                    ),
                );
            }
        }
    }
}

pub(crate) fn check_secret_ref(c: &mut Checker, path: &str, r: &SecretKeyRef) {
    if !is_dns_subdomain(&r.name) {
        c.value(
            &format!("{path}.name"),
            format!("`{}` is not a valid Secret name (a DNS subdomain)", r.name),
        );
    }
    if r.key.is_empty()
        || !r
            .key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        c.value(
            &format!("{path}.key"),
            format!("`{}` is not a valid Secret key", r.key),
        );
    }
}

/// The bytes a Kubernetes storage quantity (`100Gi`, `500M`, `1Ti`, `1073741824`) stands for.
pub(crate) fn quantity_bytes(s: &str) -> Option<u128> {
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    let factor: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    let value: f64 = num.parse().ok()?;
    (value >= 0.0).then_some((value * factor as f64) as u128)
}

/// A size for ClickHouse and Kubernetes, in whole Gi where it can be, else Mi.
pub(crate) fn format_bytes(b: u128) -> String {
    const GI: u128 = 1 << 30;
    const MI: u128 = 1 << 20;
    if b >= GI {
        format!("{}Gi", b / GI)
    } else {
        format!("{}Mi", (b / MI).max(1))
    }
}

/// The cache of an S3 disk on a volume of `storage`: 80% of it.
pub(crate) fn default_cache_size(storage: &str) -> Option<String> {
    quantity_bytes(storage).map(|b| format_bytes(b * 4 / 5))
}

/// A name Weave's migrations accept for a database or a ClickHouse cluster: letters, digits,
/// `_` and `.` (they are written into `ON CLUSTER` unquoted).
pub(crate) fn is_weave_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_read_as_kubernetes_writes_them() {
        assert_eq!(quantity_bytes("100Gi"), Some(100 << 30));
        assert_eq!(quantity_bytes("2G"), Some(2_000_000_000));
        assert_eq!(quantity_bytes("1.5Ti"), Some(3 << 39));
        assert_eq!(quantity_bytes("512"), Some(512));
        assert_eq!(quantity_bytes("10Xi"), None);
        assert_eq!(default_cache_size("100Gi").as_deref(), Some("80Gi"));
        assert_eq!(default_cache_size("1Gi").as_deref(), Some("819Mi"));
    }

    #[test]
    fn weave_accepts_only_plain_cluster_names() {
        assert!(is_weave_identifier("weave_cluster"));
        assert!(is_weave_identifier("cluster_1S_3R"));
        assert!(!is_weave_identifier("weave-cluster"));
        assert!(!is_weave_identifier("`weave-cluster`"));
    }
}
