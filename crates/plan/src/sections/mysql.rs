//! `spec.mysql`: the chart's MySQL, one you run, or RDS / Aurora made by wbstack (subnet group,
//! parameter groups, master password in Secrets Manager, mirrored into a Kubernetes Secret).

use crate::build::{placeholder, Builder};
use crate::check::{aws_identifier_problem, check_secret_ref, Checker};
use crate::compile::names;
use crate::ids::{self, outputs, Input};
use crate::kinds::{AwsSecret, DbParameterGroups, DbSubnetGroup, MirroredSecret, MysqlDatabase};
use crate::model::{MysqlMode, MysqlSpec, SecretKeyRef};
use crate::resolve::Resolved;
use serde_json::json;

/// The characters RDS accepts in a master password that wbstack generates.
pub(super) const ALPHANUMERIC: &str =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

pub(super) fn check(c: &mut Checker, r: &Resolved) {
    let m = &r.spec.mysql;
    check_log_exports(c, m);
    check_ca_cert(c, m);
    match m.mode {
        MysqlMode::External => check_external(c, m),
        MysqlMode::InCluster => {
            for (field, set) in [
                ("host", m.host.is_some()),
                ("instanceClass", m.instance_class.is_some()),
                ("performanceInsights", m.performance_insights.is_some()),
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
        MysqlMode::Rds | MysqlMode::Aurora => check_aws(c, r, m),
    }
    check_names(c, m);
}

fn check_external(c: &mut Checker, m: &MysqlSpec) {
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
        Some(s) => check_secret_ref(c, "spec.mysql.passwordSecret", s),
    }
}

/// What keeps an engine version from serving W&B: MySQL 8.0.28 or newer, or for Aurora a
/// `8.0.mysql_aurora.3.NN.P` release of 3.04 or newer (Aurora 3.04 is MySQL 8.0.28 compatible).
pub(crate) fn engine_version_problem(aurora: bool, v: &str) -> Option<String> {
    let nums = |s: &str| -> Vec<u32> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    if aurora {
        let Some(release) = v.strip_prefix("8.0.mysql_aurora.") else {
            return Some(format!(
                "`{v}` is not an Aurora MySQL 8.0 version (like 8.0.mysql_aurora.3.05.2)"
            ));
        };
        let n = nums(release);
        (n.len() < 2 || (n[0], n[1]) < (3, 4))
            .then(|| format!("Aurora MySQL {release} is older than 3.04 (MySQL 8.0.28)"))
    } else {
        let n = nums(v);
        (n.len() != 3 || (n[0], n[1], n[2]) < (8, 0, 28))
            .then(|| format!("MySQL `{v}` is older than 8.0.28, or not a MySQL version"))
    }
}

fn check_aws(c: &mut Checker, r: &Resolved, m: &MysqlSpec) {
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
    if let Some(v) = &m.engine_version {
        if let Some(problem) = engine_version_problem(m.mode == MysqlMode::Aurora, v) {
            c.value_help(
                "spec.mysql.engineVersion",
                problem,
                "W&B needs MySQL 8.0.28 or newer (Aurora MySQL 3.04 or newer)",
            );
        }
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
    if let Some(problem) = aws_identifier_problem(&format!("{}-mysql", r.env), 63) {
        c.value(
            "metadata.name",
            format!("the database identifier `{}-mysql` {problem}", r.env),
        );
    }
}

fn check_names(c: &mut Checker, m: &MysqlSpec) {
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
}

pub(super) fn compile(b: &mut Builder, r: &Resolved) {
    let m = &r.spec.mysql;
    super::components::switch(b, "mysql", m.mode == MysqlMode::InCluster);
    let database = m.database.clone().unwrap_or_else(|| "wandb_local".into());
    let user = m.user.clone().unwrap_or_else(|| "wandb".into());
    match m.mode {
        MysqlMode::InCluster => {}
        MysqlMode::External => {
            // Validation requires the secret; compile stays total for plans not yet validated.
            let ps = m.password_secret.clone().unwrap_or(SecretKeyRef {
                name: String::new(),
                key: String::new(),
            });
            b.set(
                "/global/mysql",
                json!({"host": m.host, "port": m.port.unwrap_or(3306), "database": database, "user": user, "passwordSecret": {"name": ps.name, "passwordKey": ps.key}}),
            );
        }
        MysqlMode::Rds | MysqlMode::Aurora => compile_aws(b, r, database, user),
    }
    if let Some(ca) = m
        .ca_cert
        .as_ref()
        .filter(|_| m.mode != MysqlMode::InCluster)
    {
        b.set("/global/mysql/caCert", json!(ca));
    }
}

fn compile_aws(b: &mut Builder, r: &Resolved, database: String, user: String) {
    let (m, env, pre) = (&r.spec.mysql, r.env, &r.preset);
    let aurora = m.mode == MysqlMode::Aurora;
    b.step(
        ids::DB_SUBNETS,
        DbSubnetGroup {
            name: format!("{env}-mysql"),
            subnet_ids: r.aws.subnet_ids.clone(),
        },
    );
    b.step(
        ids::DB_PARAMS,
        DbParameterGroups {
            name: format!("{env}-mysql"),
            aurora,
        },
    );
    b.step(
        ids::DB_PASSWORD,
        AwsSecret {
            name: format!("wbstack/{env}/mysql-master"),
            recovery_days: r.aws.secret_recovery_days,
            alphabet: ALPHANUMERIC.into(),
            length: 32,
        },
    );
    b.step(
        ids::MYSQL,
        MysqlDatabase {
            identifier: format!("{env}-mysql"),
            aurora,
            instances: m
                .instances
                .unwrap_or(if aurora { pre.db_instances } else { 1 }),
            instance_class: m
                .instance_class
                .clone()
                .unwrap_or_else(|| pre.db_instance_class.into()),
            engine_version: m.engine_version.clone().unwrap_or_else(|| {
                if aurora {
                    "8.0.mysql_aurora.3.05.2".into()
                } else {
                    "8.0.39".into()
                }
            }),
            database: database.clone(),
            user: user.clone(),
            storage_gb: m.storage_gb.unwrap_or(pre.db_storage_gb),
            backup_retention_days: m
                .backup_retention_days
                .unwrap_or(pre.db_backup_retention_days),
            deletion_protection: m.deletion_protection.unwrap_or(r.plan.metadata.protected),
            final_snapshot: m.final_snapshot,
            security_group_ids: r.aws.security_group_ids.clone(),
            security_group: crate::sections::security_group_input(r),
            log_exports: log_exports(m),
            performance_insights: m.performance_insights.unwrap_or(true),
            apply_immediately: r.apply_immediately(),
            restore: r.spec.restore.as_ref().map(super::restore::database),
            kms: Input::new(ids::KMS, outputs::ARN),
            subnets: Input::new(ids::DB_SUBNETS, outputs::NAME),
            instance_params: Input::new(ids::DB_PARAMS, outputs::INSTANCE_GROUP),
            cluster_params: Input::new(ids::DB_PARAMS, outputs::CLUSTER_GROUP),
            password: Input::new(ids::DB_PASSWORD, outputs::SECRET),
        },
    );
    b.step(
        ids::MYSQL_PASSWORD,
        MirroredSecret {
            namespace: r.ns.clone(),
            name: names::MYSQL.into(),
            key: names::MYSQL_KEY.into(),
            from: Input::new(ids::DB_PASSWORD, outputs::SECRET),
        },
    );
    b.need(Input::new(ids::MYSQL_PASSWORD, outputs::SECRET));
    // W&B's pods carry when the password's Secret was last written, so a rewrite (one edited
    // by hand and set back) restarts them with the right password.
    let written = Input::new(ids::MYSQL_PASSWORD, outputs::WRITTEN);
    let at = "/global/pod/annotations/wbstack.dev~1mysql-password-written";
    b.set(at, json!(crate::build::placeholder(written)));
    b.bind(at, written);
    let host = Input::new(ids::MYSQL, outputs::ENDPOINT);
    b.set(
        "/global/mysql",
        json!({"host": placeholder(host), "port": 3306, "database": database, "user": user, "passwordSecret": {"name": names::MYSQL, "passwordKey": names::MYSQL_KEY}}),
    );
    b.bind("/global/mysql/host", host);
    b.bind("/global/mysql/port", Input::new(ids::MYSQL, outputs::PORT));
}

/// A CA given for the server's certificate is one or more PEM certificates, and is for a
/// MySQL wbstack does not run in the cluster.
fn check_ca_cert(c: &mut Checker, m: &MysqlSpec) {
    let Some(ca) = &m.ca_cert else { return };
    if m.mode == MysqlMode::InCluster {
        c.at(
            "spec.mysql.caCert",
            true,
            "the chart's own MySQL has no CA to check",
            Some("remove caCert, or use mode rds, aurora or external"),
        );
        return;
    }
    if let Err(why) = pem_certificates(ca) {
        c.value_help(
            "spec.mysql.caCert",
            why,
            "paste the PEM bundle (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)",
        );
    }
}

/// The number of PEM certificates in `text`, each a base64 body between its markers.
fn pem_certificates(text: &str) -> Result<usize, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut n = 0;
    let mut rest = text;
    while let Some(at) = rest.find(BEGIN) {
        let body = &rest[at + BEGIN.len()..];
        let Some(end) = body.find(END) else {
            return Err(format!("certificate {} has no {END}", n + 1));
        };
        let b64: String = body[..end].split_whitespace().collect();
        let ok = !b64.is_empty()
            && b64.len().is_multiple_of(4)
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        if !ok {
            return Err(format!(
                "certificate {} is not base64 between its markers",
                n + 1
            ));
        }
        n += 1;
        rest = &body[end + END.len()..];
    }
    if n == 0 {
        return Err("no PEM certificate in it".into());
    }
    Ok(n)
}

/// The logs RDS and Aurora MySQL export to CloudWatch Logs.
const LOG_TYPES: [&str; 4] = ["audit", "error", "general", "slowquery"];

/// The plan's log exports, sorted: `error` and `slowquery` unless it names others.
fn log_exports(m: &MysqlSpec) -> Vec<String> {
    let mut v = m
        .log_exports
        .clone()
        .unwrap_or_else(|| vec!["error".into(), "slowquery".into()]);
    v.sort();
    v.dedup();
    v
}

/// Every log the plan exports is one MySQL has.
fn check_log_exports(c: &mut Checker, m: &MysqlSpec) {
    for (i, l) in m.log_exports.iter().flatten().enumerate() {
        if !LOG_TYPES.contains(&l.as_str()) {
            c.value_help(
                &format!("spec.mysql.logExports[{i}]"),
                format!("`{l}` is not a MySQL log RDS exports"),
                &format!("one of {}", LOG_TYPES.join(", ")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::engine_version_problem as problem;

    #[test]
    fn mysql_8_0_28_or_aurora_3_04_at_least() {
        assert!(problem(false, "8.0.39").is_none());
        assert!(problem(false, "8.4.3").is_none());
        assert!(problem(false, "8.0.27")
            .unwrap()
            .contains("older than 8.0.28"));
        assert!(problem(false, "5.7.44").is_some());
        assert!(problem(true, "8.0.mysql_aurora.3.05.2").is_none());
        assert!(problem(true, "8.0.mysql_aurora.3.03.1")
            .unwrap()
            .contains("3.04"));
        assert!(problem(true, "5.7.mysql_aurora.2.11.2").is_some());
    }

    const CA: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_ca_bundle_is_pem_certificates() {
        assert_eq!(super::pem_certificates(CA), Ok(1));
        assert_eq!(super::pem_certificates(&format!("{CA}{CA}")), Ok(2));
        let e = super::pem_certificates("not a certificate").unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let cut = CA.replace("-----END CERTIFICATE-----", "");
        assert!(super::pem_certificates(&cut)
            .unwrap_err()
            .contains("has no"));
        let junk = CA.replace("AAAA", "A*A!");
        assert!(super::pem_certificates(&junk)
            .unwrap_err()
            .contains("base64"));
    }

    #[test]
    fn the_ca_goes_to_the_chart_as_global_mysql_ca_cert_and_junk_is_refused_where_it_is() {
        let plan = |ca: &str| {
            format!(
                "apiVersion: wbstack.dev/v1\nkind: Plan\nmetadata: {{name: dev}}\nspec:\n  wandb:\n    host: https://wandb.example.com\n    license: {{env: WANDB_LICENSE}}\n  mysql:\n    mode: external\n    host: db.example.com\n    passwordSecret: {{name: db, key: password}}\n    caCert: |\n{}",
                ca.lines().map(|l| format!("      {l}\n")).collect::<String>()
            )
        };
        let p = crate::parse("p.yaml", &plan(CA)).unwrap();
        let steps = crate::compile(&p);
        let w = steps.iter().find(|s| s.id == crate::ids::WANDB).unwrap();
        let crate::StepKind::WandbResource(r) = &w.kind else {
            panic!("not the resource")
        };
        assert_eq!(r.values["global"]["mysql"]["caCert"], CA);
        let err = crate::parse("p.yaml", &plan("nonsense")).unwrap_err();
        let d = &err.0[0];
        assert!(d.message.contains("no PEM certificate"), "{d:?}");
        assert_eq!((d.line, d.column), (12, 5), "{d:?}");
    }
}
