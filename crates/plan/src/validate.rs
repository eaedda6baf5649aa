//! Parsing and validation: every check runs before any API call, and every problem names its
//! file, line, column and field.

use crate::diag::{Diagnostic, PlanError};
use crate::locate::Locations;
use crate::model::*;

const KNOWN_COMPONENTS: [&str; 18] = [
    "api",
    "app",
    "frontend",
    "console",
    "executor",
    "filestream",
    "flat-run-fields-updater",
    "glue",
    "nginx",
    "parquet",
    "weave",
    "weave-trace",
    "weave-trace-worker",
    "prometheus",
    "otel",
    "anaconda2",
    "bufstream",
    "settings-migration-job",
];

struct Checker<'a> {
    file: &'a str,
    loc: Locations,
    out: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn at(&mut self, path: &str, key: bool, message: impl Into<String>, help: Option<&str>) {
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

    fn value(&mut self, path: &str, message: impl Into<String>) {
        self.at(path, false, message, None)
    }

    fn value_help(&mut self, path: &str, message: impl Into<String>, help: &str) {
        self.at(path, false, message, Some(help))
    }
}

/// Parses and validates a plan. `file` names it in diagnostics.
pub fn parse(file: &str, text: &str) -> Result<Plan, PlanError> {
    let plan: Plan = match serde_yaml_ng::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            let msg = e.to_string();
            // serde_yaml_ng appends " at line L column C"; the location is said once, up front.
            let msg = match msg.find(" at line ") {
                Some(i) => msg[..i].to_owned(),
                None => msg,
            };
            let (path, message) = match msg.split_once(": ") {
                Some((p, m))
                    if p.starts_with("spec")
                        || p.starts_with("metadata")
                        || p.starts_with("apiVersion")
                        || p.starts_with("kind") =>
                {
                    (p.to_owned(), m.to_owned())
                }
                _ => (String::new(), msg),
            };
            return Err(PlanError(vec![Diagnostic {
                file: file.to_owned(),
                line,
                column,
                path,
                message,
                help: None,
            }]));
        }
    };
    let mut c = Checker {
        file,
        loc: Locations::index(text),
        out: Vec::new(),
    };
    check(&mut c, &plan);
    if c.out.is_empty() {
        Ok(plan)
    } else {
        c.out.sort_by_key(|d| (d.line, d.column));
        Err(PlanError(c.out))
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

fn is_region(s: &str) -> bool {
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

fn is_quantity(s: &str) -> bool {
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    num_end > 0 && ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"].contains(&&s[num_end..])
}

fn check_resources(c: &mut Checker, path: &str, r: &Option<Resources>) {
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

fn check_secret_ref(c: &mut Checker, path: &str, r: &SecretKeyRef) {
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

fn check(c: &mut Checker, p: &Plan) {
    if p.api_version != API_VERSION {
        c.value_help(
            "apiVersion",
            format!("unsupported apiVersion `{}`", p.api_version),
            &format!("use `{API_VERSION}`"),
        );
    }
    if p.kind != "Plan" {
        c.value("kind", format!("expected kind `Plan`, found `{}`", p.kind));
    }
    if !is_dns_label(&p.metadata.name, 40) {
        c.value_help("metadata.name", format!("`{}` is not a valid environment name", p.metadata.name), "use at most 40 lowercase letters, digits and '-', starting and ending with a letter or digit");
    }
    let s = &p.spec;
    if !is_dns_label(&s.kubernetes.namespace, 63) {
        c.value(
            "spec.kubernetes.namespace",
            format!(
                "`{}` is not a valid namespace name (a DNS label)",
                s.kubernetes.namespace
            ),
        );
    }
    if !is_dns_subdomain(&s.wandb.name) {
        c.value(
            "spec.wandb.name",
            format!(
                "`{}` is not a valid resource name (a DNS subdomain)",
                s.wandb.name
            ),
        );
    }
    let host = &s.wandb.host;
    let rest = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"));
    match rest {
        None => c.value_help(
            "spec.wandb.host",
            format!("`{host}` is not an http(s) URL"),
            "like https://wandb.example.com",
        ),
        Some(r) if r.is_empty() || r.starts_with('/') => {
            c.value("spec.wandb.host", format!("`{host}` has no host name"))
        }
        _ => {}
    }
    let l = &s.wandb.license;
    let given = [
        l.env.is_some(),
        l.file.is_some(),
        l.value.is_some(),
        l.secret.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given != 1 {
        c.value_help(
            "spec.wandb.license",
            if given == 0 {
                "the license is missing".to_string()
            } else {
                "give the license one way only".to_string()
            },
            "set exactly one of env, file, value or secret",
        );
    }
    if let Some(e) = &l.env {
        if e.is_empty()
            || !e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || e.as_bytes()[0].is_ascii_digit()
        {
            c.value(
                "spec.wandb.license.env",
                format!("`{e}` is not an environment variable name"),
            );
        }
    }
    if let Some(v) = &l.value {
        if v.trim().is_empty() {
            c.value("spec.wandb.license.value", "the license is empty");
        }
    }
    if let Some(r) = &l.secret {
        check_secret_ref(c, "spec.wandb.license.secret", r);
    }
    if !s
        .wandb
        .operator
        .version
        .split('.')
        .all(|x| x.parse::<u32>().is_ok())
        || s.wandb.operator.version.split('.').count() != 3
    {
        c.value(
            "spec.wandb.operator.version",
            format!(
                "`{}` is not a version like 1.21.3",
                s.wandb.operator.version
            ),
        );
    }
    if !is_dns_label(&s.wandb.operator.namespace, 63) {
        c.value(
            "spec.wandb.operator.namespace",
            format!(
                "`{}` is not a valid namespace name",
                s.wandb.operator.namespace
            ),
        );
    }
    for (name, comp) in &s.wandb.components {
        let path = format!("spec.wandb.components.{name}");
        if !KNOWN_COMPONENTS.contains(&name.as_str()) {
            c.at(
                &path,
                true,
                format!("unknown component `{name}`"),
                Some(&format!(
                    "known components: {}",
                    KNOWN_COMPONENTS.join(", ")
                )),
            );
        }
        if comp.replicas.is_some_and(|r| r > 100) {
            c.value(&format!("{path}.replicas"), "at most 100 replicas");
        }
        check_resources(c, &format!("{path}.resources"), &comp.resources);
    }
    if !s.wandb.values.is_null() && !s.wandb.values.is_object() {
        c.value("spec.wandb.values", "values must be a mapping");
    }
    if s.wandb.weave.trace_workers && !s.wandb.weave.enabled {
        c.value(
            "spec.wandb.weave.traceWorkers",
            "trace workers need weave (`enabled: true`)",
        );
    }

    // MySQL.
    let m = &s.mysql;
    match m.mode {
        MysqlMode::External => {
            if m.host.as_deref().unwrap_or("").is_empty() {
                c.value_help(
                    "spec.mysql",
                    "external MySQL needs a host",
                    "set spec.mysql.host",
                );
            }
            match &m.password_secret {
                None => c.value_help(
                    "spec.mysql",
                    "external MySQL needs a password Secret",
                    "set spec.mysql.passwordSecret {name, key}",
                ),
                Some(r) => check_secret_ref(c, "spec.mysql.passwordSecret", r),
            }
        }
        MysqlMode::InCluster => {
            for (field, set) in [
                ("host", m.host.is_some()),
                ("instanceClass", m.instance_class.is_some()),
                ("passwordSecret", m.password_secret.is_some()),
            ] {
                if set {
                    c.at(
                        &format!("spec.mysql.{field}"),
                        true,
                        format!("`{field}` is not used with mode in-cluster"),
                        Some("set mode to external, rds or aurora, or remove it"),
                    );
                }
            }
        }
        MysqlMode::Rds | MysqlMode::Aurora => {
            if m.host.is_some() {
                c.at(
                    "spec.mysql.host",
                    true,
                    "the host of an RDS database is known only once it exists",
                    Some("remove host, or use mode external"),
                );
            }
            if let Some(ic) = &m.instance_class {
                if !ic.starts_with("db.") || ic.split('.').count() != 3 {
                    c.value(
                        "spec.mysql.instanceClass",
                        format!("`{ic}` is not an RDS instance class (like db.r6g.large)"),
                    );
                }
            }
            if m.mode == MysqlMode::Aurora && m.instances == Some(0) {
                c.value(
                    "spec.mysql.instances",
                    "an Aurora cluster needs at least one instance",
                );
            }
            if m.mode == MysqlMode::Aurora && m.storage_gb.is_some() {
                c.at(
                    "spec.mysql.storageGb",
                    true,
                    "Aurora storage grows by itself; storageGb is for mode rds",
                    None,
                );
            }
            if m.storage_gb.is_some_and(|g| !(20..=65536).contains(&g)) {
                c.value("spec.mysql.storageGb", "RDS storage must be 20 to 65536 GB");
            }
            if m.backup_retention_days.is_some_and(|d| d > 35) {
                c.value(
                    "spec.mysql.backupRetentionDays",
                    "RDS keeps backups at most 35 days",
                );
            }
            if let Some(problem) = aws_identifier_problem(&format!("{}-mysql", p.metadata.name), 63)
            {
                c.value(
                    "metadata.name",
                    format!(
                        "the database identifier `{}-mysql` {problem}",
                        p.metadata.name
                    ),
                );
            }
        }
    }
    if let Some(db) = &m.database {
        if db.is_empty()
            || db.len() > 64
            || !db.as_bytes()[0].is_ascii_alphabetic()
            || !db.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            c.value("spec.mysql.database", format!("`{db}` is not a valid MySQL database name (letters, digits, '_', starting with a letter)"));
        }
    }
    if let Some(u) = &m.user {
        if u.is_empty()
            || u.len() > 16
            || !u.as_bytes()[0].is_ascii_alphabetic()
            || !u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            c.value("spec.mysql.user", format!("`{u}` is not a valid MySQL user name (1-16 letters, digits or '_', starting with a letter)"));
        } else if ["admin", "root", "rdsadmin", "mysql"].contains(&u.as_str())
            && matches!(m.mode, MysqlMode::Rds | MysqlMode::Aurora)
        {
            c.value("spec.mysql.user", format!("`{u}` is reserved by RDS"));
        }
    }

    // Redis.
    let r = &s.redis;
    match r.mode {
        RedisMode::External => {
            if r.host.as_deref().unwrap_or("").is_empty() {
                c.value_help(
                    "spec.redis",
                    "external Redis needs a host",
                    "set spec.redis.host",
                );
            }
            if let Some(ps) = &r.password_secret {
                check_secret_ref(c, "spec.redis.passwordSecret", ps);
            }
        }
        RedisMode::InCluster => {
            if r.host.is_some() {
                c.at(
                    "spec.redis.host",
                    true,
                    "`host` is not used with mode in-cluster",
                    Some("set mode to external or elasticache, or remove it"),
                );
            }
        }
        RedisMode::Elasticache => {
            if r.host.is_some() {
                c.at(
                    "spec.redis.host",
                    true,
                    "the host of an ElastiCache group is known only once it exists",
                    Some("remove host, or use mode external"),
                );
            }
            if let Some(nt) = &r.node_type {
                if !nt.starts_with("cache.") || nt.split('.').count() != 3 {
                    c.value(
                        "spec.redis.nodeType",
                        format!("`{nt}` is not an ElastiCache node type (like cache.m6g.large)"),
                    );
                }
            }
            if let Some(problem) = aws_identifier_problem(&format!("{}-redis", p.metadata.name), 40)
            {
                c.value(
                    "metadata.name",
                    format!("the cache identifier `{}-redis` {problem}", p.metadata.name),
                );
            }
        }
    }

    // Bucket.
    let b = &s.bucket;
    match b.mode {
        BucketMode::S3 => {
            let name = b
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-wandb-artifacts", p.metadata.name));
            if let Some(problem) = s3_bucket_problem(&name) {
                let path = if b.name.is_some() {
                    "spec.bucket.name"
                } else {
                    "metadata.name"
                };
                c.value(
                    path,
                    format!("the bucket name `{name}` is not valid: it {problem}"),
                );
            }
            if let Some(arn) = &b.kms_key_arn {
                if !arn.starts_with("arn:aws:kms:") && !arn.starts_with("arn:aws-") {
                    c.value(
                        "spec.bucket.kmsKeyArn",
                        format!("`{arn}` is not a KMS key ARN"),
                    );
                }
            }
        }
        BucketMode::Existing => {
            match &b.name {
                None => c.value_help(
                    "spec.bucket",
                    "an existing bucket needs its name",
                    "set spec.bucket.name",
                ),
                Some(n) if b.provider.as_deref().unwrap_or("s3") == "s3" => {
                    if let Some(problem) = s3_bucket_problem(n) {
                        c.value(
                            "spec.bucket.name",
                            format!("the bucket name `{n}` is not valid: it {problem}"),
                        );
                    }
                }
                _ => {}
            }
            if let Some(pv) = &b.provider {
                if !["s3", "gcs", "az"].contains(&pv.as_str()) {
                    c.value(
                        "spec.bucket.provider",
                        format!("unknown provider `{pv}`; expected s3, gcs or az"),
                    );
                }
            }
        }
        BucketMode::None => {
            if b.name.is_some() {
                c.at(
                    "spec.bucket.name",
                    true,
                    "`name` is not used with mode none",
                    Some("set mode to s3 or existing"),
                );
            }
        }
    }
    if !(7..=30).contains(&b.kms_deletion_window_days) {
        c.value(
            "spec.bucket.kmsDeletionWindowDays",
            "a KMS key's deletion window is 7 to 30 days",
        );
    }

    // ClickHouse.
    let ch = &s.clickhouse;
    let replicas = ch
        .replicas
        .unwrap_or(crate::presets::preset(s.size).clickhouse_replicas);
    match ch.mode {
        ClickhouseMode::External => {
            if ch.host.as_deref().unwrap_or("").is_empty() {
                c.value_help(
                    "spec.clickhouse",
                    "external ClickHouse needs a host",
                    "set spec.clickhouse.host",
                );
            }
            if let Some(ps) = &ch.password_secret {
                check_secret_ref(c, "spec.clickhouse.passwordSecret", ps);
            }
        }
        ClickhouseMode::Bundled | ClickhouseMode::Altinity => {
            if ch.host.is_some() {
                c.at(
                    "spec.clickhouse.host",
                    true,
                    "wbstack names the host of a ClickHouse it deploys",
                    Some("remove host, or use mode external"),
                );
            }
            if ch.shards == 0 {
                c.value("spec.clickhouse.shards", "at least one shard");
            }
            if ch.replicas == Some(0) {
                c.value("spec.clickhouse.replicas", "at least one replica");
            }
            if ch.replicated == Some(true) && replicas < 2 {
                c.value_help(
                    "spec.clickhouse.replicated",
                    "replicated ClickHouse needs at least 2 replicas",
                    "set spec.clickhouse.replicas to 2 or more, or replicated: false",
                );
            }
        }
        ClickhouseMode::InChart | ClickhouseMode::None => {}
    }
    if ch.s3.is_some() && ch.mode != ClickhouseMode::Bundled {
        c.at(
            "spec.clickhouse.s3",
            true,
            "an S3 disk is configured only for mode bundled",
            None,
        );
    }
    if let Some(s3) = &ch.s3 {
        if !(s3.endpoint.starts_with("https://") || s3.endpoint.starts_with("http://")) {
            c.value(
                "spec.clickhouse.s3.endpoint",
                format!("`{}` is not an http(s) URL", s3.endpoint),
            );
        }
        if !s3.use_environment_credentials && s3.credentials_secret.is_none() {
            c.value_help(
                "spec.clickhouse.s3",
                "S3 credentials are needed",
                "set useEnvironmentCredentials: true or credentialsSecret",
            );
        }
        if !is_quantity(&s3.cache_size) {
            c.value(
                "spec.clickhouse.s3.cacheSize",
                format!("`{}` is not a size (like 100Gi)", s3.cache_size),
            );
        }
    }
    if ch.cluster_name.is_empty()
        || !ch
            .cluster_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        c.value(
            "spec.clickhouse.clusterName",
            format!("`{}` is not a valid cluster name", ch.cluster_name),
        );
    }
    if ![
        "none",
        "fatal",
        "critical",
        "error",
        "warning",
        "notice",
        "information",
        "debug",
        "trace",
        "test",
    ]
    .contains(&ch.log_level.as_str())
    {
        c.value(
            "spec.clickhouse.logLevel",
            format!("unknown log level `{}`", ch.log_level),
        );
    }
    if ch.mode == ClickhouseMode::None && s.wandb.weave.enabled {
        c.value_help(
            "spec.clickhouse.mode",
            "Weave needs ClickHouse",
            "choose a ClickHouse mode, or set spec.wandb.weave.enabled: false",
        );
    }
    if !is_quantity(&ch.storage_size) {
        c.value(
            "spec.clickhouse.storageSize",
            format!("`{}` is not a size (like 100Gi)", ch.storage_size),
        );
    }
    check_resources(c, "spec.clickhouse.resources", &ch.resources);

    // AWS.
    let needs_aws = matches!(m.mode, MysqlMode::Rds | MysqlMode::Aurora)
        || r.mode == RedisMode::Elasticache
        || b.mode == BucketMode::S3;
    let needs_subnets =
        matches!(m.mode, MysqlMode::Rds | MysqlMode::Aurora) || r.mode == RedisMode::Elasticache;
    match &s.aws {
        None if needs_aws => c.value_help(
            "spec",
            "AWS resources are planned but `spec.aws` is missing",
            "add spec.aws with region and subnetIds",
        ),
        None => {}
        Some(a) => {
            if let Some(region) = &a.region {
                if !is_region(region) {
                    c.value(
                        "spec.aws.region",
                        format!("`{region}` is not an AWS region (like us-west-2)"),
                    );
                }
            }
            if let Some(ep) = &a.endpoint {
                if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                    c.value("spec.aws.endpoint", format!("`{ep}` is not an http(s) URL"));
                }
            }
            if needs_subnets && a.subnet_ids.len() < 2 {
                c.value_help(
                    "spec.aws.subnetIds",
                    "RDS and ElastiCache subnet groups need at least two subnets",
                    "list subnets in two or more availability zones",
                );
            }
            for (i, sn) in a.subnet_ids.iter().enumerate() {
                if !sn.starts_with("subnet-") {
                    c.value(
                        &format!("spec.aws.subnetIds[{i}]"),
                        format!("`{sn}` is not a subnet id (subnet-...)"),
                    );
                }
            }
            for (i, sg) in a.security_group_ids.iter().enumerate() {
                if !sg.starts_with("sg-") {
                    c.value(
                        &format!("spec.aws.securityGroupIds[{i}]"),
                        format!("`{sg}` is not a security group id (sg-...)"),
                    );
                }
            }
            for (k, v) in &a.tags {
                let path = format!("spec.aws.tags.{k}");
                if k.is_empty() || k.len() > 128 {
                    c.value(&path, "a tag key has 1 to 128 characters");
                } else if k.starts_with("aws:") || k.starts_with("wbstack:") {
                    c.at(
                        &path,
                        true,
                        format!("the tag key prefix of `{k}` is reserved"),
                        Some("aws: belongs to AWS and wbstack: to wbstack's own ownership tags"),
                    );
                }
                if v.len() > 256 {
                    c.value(&path, "a tag value has at most 256 characters");
                }
            }
            if a.secret_recovery_days != 0 && !(7..=30).contains(&a.secret_recovery_days) {
                c.value(
                    "spec.aws.secretRecoveryDays",
                    "0 (delete at once) or 7 to 30 days",
                );
            }
        }
    }
    if let Some(k) = &s.kafka {
        check_secret_ref(c, "spec.kafka.passwordSecret", &k.password_secret);
    }
    for (step, hooks) in &s.hooks {
        for (i, h) in hooks.iter().enumerate() {
            let path = format!("spec.hooks.{step}[{i}]");
            if !["before", "after", "on_failure", "on_rollback"].contains(&h.when.as_str()) {
                c.value(
                    &format!("{path}.when"),
                    format!(
                        "unknown hook time `{}`; expected before, after, on_failure or on_rollback",
                        h.when
                    ),
                );
            }
            if h.command.is_empty() || h.command[0].is_empty() {
                c.value(&format!("{path}.command"), "the command is empty");
            }
            if h.timeout_seconds == 0 {
                c.value(
                    &format!("{path}.timeoutSeconds"),
                    "the timeout must be at least one second",
                );
            }
        }
    }
    if s.timeouts.ready_seconds == 0 {
        c.value(
            "spec.timeouts.readySeconds",
            "the timeout must be at least one second",
        );
    }
    // Hooks and timeouts must name steps of this plan.
    let ids: Vec<String> = crate::compile::compile(p)
        .iter()
        .map(|s| s.id.clone())
        .collect();
    for step in s.hooks.keys() {
        if !ids.contains(step) {
            c.at(
                &format!("spec.hooks.{step}"),
                true,
                format!("no step `{step}` in this plan"),
                Some(&format!("steps: {}", ids.join(", "))),
            );
        }
    }
    let aws_ids: Vec<&String> = ids.iter().filter(|i| i.starts_with("aws.")).collect();
    for (i, step) in s.aws.iter().flat_map(|a| a.adopt.iter()).enumerate() {
        if !aws_ids.contains(&step) {
            c.at(
                &format!("spec.aws.adopt[{i}]"),
                false,
                format!("no AWS step `{step}` in this plan"),
                Some(&format!(
                    "AWS steps: {}",
                    aws_ids
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
    }
    for step in s.timeouts.steps.keys() {
        if !ids.contains(step) {
            c.at(
                &format!("spec.timeouts.steps.{step}"),
                true,
                format!("no step `{step}` in this plan"),
                Some(&format!("steps: {}", ids.join(", "))),
            );
        }
    }
}
