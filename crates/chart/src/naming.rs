//! Names as Helm makes them: the release name rule Helm enforces, and the `fullname` rule every
//! `wandb-base` alias names its objects by.

/// The longest release name Helm accepts (its `releaseNameMaxLen`).
pub const RELEASE_NAME_MAX: usize = 53;

/// Why Helm refuses a release name, if it does: longer than 53 characters, or not matching
/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`.
pub fn release_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a release name must not be empty".into());
    }
    if name.len() > RELEASE_NAME_MAX {
        return Some(format!(
            "Helm refuses a release name longer than {RELEASE_NAME_MAX} characters ({} given)",
            name.len()
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.split('.').all(label_ok) {
        return Some(
            "Helm accepts lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit"
                .into(),
        );
    }
    None
}

/// Helm's `trunc 63 | trimSuffix "-"`.
pub fn trunc63(name: &str) -> String {
    let cut: String = name.chars().take(63).collect();
    cut.strip_suffix('-').map(str::to_owned).unwrap_or(cut)
}

/// The `fullname` of a chart (or alias) `name` in a release: `fullnameOverride` when set; else
/// the release name alone when it contains `name`; else `<release>-<name>`; cut to 63
/// characters with a trailing `-` removed.
pub fn fullname(release: &str, name: &str, fullname_override: Option<&str>) -> String {
    match fullname_override.filter(|o| !o.is_empty()) {
        Some(o) => trunc63(o),
        None if release.contains(name) => trunc63(release),
        None => trunc63(&format!("{release}-{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_name_rule_is_helms() {
        assert_eq!(release_name_problem("wandb"), None);
        assert_eq!(release_name_problem("wandb.prod-1"), None);
        assert!(release_name_problem(&"a".repeat(53)).is_none());
        assert!(release_name_problem(&"a".repeat(54))
            .unwrap()
            .contains("longer than 53"));
        for bad in ["", "Wandb", "-wandb", "wandb-", "wan_db", "a..b", "a.-b"] {
            assert!(release_name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn fullname_follows_contains_override_and_the_63_character_cut() {
        assert_eq!(fullname("wandb", "app", None), "wandb-app");
        assert_eq!(fullname("wandb-weave", "weave", None), "wandb-weave");
        assert_eq!(
            fullname("wandb-weave", "weave-trace", None),
            "wandb-weave-weave-trace"
        );
        assert_eq!(fullname("weave-app", "app", None), "weave-app");
        assert_eq!(fullname("wandb", "app", Some("mine")), "mine");
        assert_eq!(fullname("wandb", "app", Some("")), "wandb-app");
        // 62 characters and a `-` at the cut: trimmed.
        let long = format!("{}-x", "a".repeat(62));
        assert_eq!(fullname(&long, "app", None), "a".repeat(62));
        assert_eq!(fullname(&"b".repeat(53), "weave-trace", None).len(), 63);
    }
}
