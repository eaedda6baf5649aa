//! `s3://BUCKET/PREFIX`: where a team's environments keep their state.

use std::fmt;

/// A state store in S3: a bucket and a key prefix (without slashes at its ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

/// Why a state location is not usable.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("state location `{url}`: {reason}")]
pub struct BadUrl {
    pub url: String,
    pub reason: String,
}

impl S3Url {
    /// Whether `s` names a state store in S3 rather than a local directory.
    pub fn is_s3(s: &str) -> bool {
        s.starts_with("s3://")
    }

    /// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    pub fn parse(s: &str) -> Result<S3Url, BadUrl> {
        let bad = |reason: &str| BadUrl {
            url: s.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| bad("does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some(why) = bucket_problem(bucket) {
            return Err(bad(&why));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..")
            || prefix.contains("//")
            || prefix.chars().any(char::is_control)
        {
            return Err(bad(
                "the key prefix has an empty, `.` or `..` part, or a control character",
            ));
        }
        Ok(S3Url {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The key of `rest` under the prefix.
    pub fn key(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// What is wrong with a bucket name, by S3's general purpose bucket naming rules.
fn bucket_problem(b: &str) -> Option<String> {
    if b.is_empty() {
        return Some("no bucket name".into());
    }
    if !(3..=63).contains(&b.len()) {
        return Some(format!("bucket name `{b}` is not 3 to 63 characters long"));
    }
    if !b
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Some(format!(
            "bucket name `{b}` may hold only lowercase letters, digits, `-` and `.`"
        ));
    }
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !ends_ok(b.chars().next()) || !ends_ok(b.chars().last()) {
        return Some(format!(
            "bucket name `{b}` must begin and end with a letter or digit"
        ));
    }
    if b.contains("..") {
        return Some(format!("bucket name `{b}` has two adjacent periods"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_prefixes_parse() {
        let u = S3Url::parse("s3://team-state/wbstack/").unwrap();
        assert_eq!(u.bucket, "team-state");
        assert_eq!(u.prefix, "wbstack");
        assert_eq!(u.key("dev/lock.json"), "wbstack/dev/lock.json");
        assert_eq!(u.to_string(), "s3://team-state/wbstack");
        let bare = S3Url::parse("s3://team-state").unwrap();
        assert_eq!(bare.key("dev/plan.yaml"), "dev/plan.yaml");
        assert_eq!(bare.to_string(), "s3://team-state");
    }

    #[test]
    fn bad_locations_say_what_is_wrong() {
        for (url, says) in [
            ("s3://", "no bucket name"),
            ("s3://Team/x", "lowercase"),
            ("s3://ab", "3 to 63"),
            ("s3://-team/x", "begin and end"),
            ("s3://team..x", "adjacent"),
            ("s3://team/a/../b", "`..`"),
            ("gs://team", "s3://"),
        ] {
            let e = S3Url::parse(url).unwrap_err();
            assert!(e.to_string().contains(says), "{url}: {e}");
        }
    }
}
