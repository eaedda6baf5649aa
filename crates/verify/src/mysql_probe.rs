//! MySQL as the pods reach it: over TLS as the chart connects (`tls=preferred`: encrypted, and
//! checked against `global.mysql.caCert` when the values give one), MySQL 8.0.28 or newer (not
//! MariaDB), the database, a writer, and a table the user can create and drop.

use crate::run::Probe;
use crate::verdict::Finding;
use crate::wiring::MysqlTarget;
use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};
use wbstack_engine::redact;

const NAME: &str = "mysql";

/// The probe for the MySQL the values name.
pub struct Mysql {
    pub target: MysqlTarget,
}

/// What a version string says: MySQL 8.0.28 or newer, or why not.
fn version_problem(v: &str) -> Option<String> {
    if v.to_ascii_lowercase().contains("mariadb") {
        return Some(format!(
            "{v} is MariaDB, not MySQL: W&B needs MySQL 8.0.28 or newer"
        ));
    }
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    let (Some(Some(a)), Some(Some(b)), Some(Some(c))) = (parts.next(), parts.next(), parts.next())
    else {
        return Some(format!("{v} is not a MySQL version"));
    };
    ((a, b, c) < (8, 0, 28)).then(|| format!("MySQL {v} is older than 8.0.28, which W&B needs"))
}

impl Mysql {
    fn checked(&self) -> String {
        let t = &self.target;
        let user = t.at.user.as_deref().unwrap_or("wandb");
        format!(
            "{}:{}/{} as {user} over TLS",
            t.at.host, t.at.port, t.database
        )
    }

    fn opts(&self, password: &str) -> OptsBuilder {
        let t = &self.target;
        let ssl = match &t.at.ca {
            Some(ca) => SslOpts::default()
                .with_root_certs(vec![ca.as_bytes().to_vec().into()])
                .with_disable_built_in_roots(true),
            // The chart's `tls=preferred`: encrypted, the certificate not checked.
            None => SslOpts::default().with_danger_accept_invalid_certs(true),
        };
        OptsBuilder::default()
            .ip_or_hostname(t.at.host.clone())
            .tcp_port(t.at.port)
            .user(t.at.user.clone())
            .pass(Some(password.to_owned()))
            .db_name(Some(t.database.clone()))
            .ssl_opts(Some(ssl))
            .prefer_socket(false)
    }

    /// Each check on an open connection, in order; stops at the first that cannot go on.
    async fn checks_on(&self, c: &mut Conn, out: &mut Vec<Finding>) -> Result<(), String> {
        let version: String = c
            .query_first("SELECT VERSION()")
            .await
            .map_err(err)?
            .unwrap_or_default();
        out.push(match version_problem(&version) {
            None => Finding::pass(NAME, "the server's version", format!("MySQL {version}")),
            Some(p) => Finding::fail(
                NAME,
                "the server's version",
                p,
                "run MySQL 8.0.28 or newer (Aurora MySQL 3.04 or newer)",
            ),
        });
        let cipher: Option<(String, String)> = c
            .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            .await
            .map_err(err)?;
        let cipher = cipher.map(|(_, v)| v).unwrap_or_default();
        out.push(if cipher.is_empty() {
            Finding::fail(
                NAME,
                "TLS",
                "the session is not encrypted",
                "turn on TLS on the server",
            )
        } else if self.target.at.ca.is_some() {
            let seen = format!(
                "encrypted ({cipher}), the server's certificate checked against global.mysql.caCert"
            );
            Finding::pass(NAME, "TLS", seen)
        } else {
            let seen = format!(
                "encrypted ({cipher}), the server's certificate not checked (no global.mysql.caCert)"
            );
            Finding::pass(NAME, "TLS", seen)
        });
        let read_only: Option<i64> = c
            .query_first("SELECT @@global.read_only")
            .await
            .map_err(err)?;
        if read_only == Some(1) {
            out.push(Finding::fail(
                NAME,
                "the host is a writer",
                "the server is read-only (a reader endpoint?)",
                "point global.mysql.host at the cluster's writer endpoint",
            ));
            return Ok(());
        }
        out.push(self.table(c).await);
        Ok(())
    }

    /// The user can create, write and drop a table in the database.
    async fn table(&self, c: &mut Conn) -> Finding {
        let name = format!("wbstack_verify_{}", std::process::id());
        let checked = format!("create, write and drop a table in {}", self.target.database);
        let steps = [
            format!("CREATE TABLE IF NOT EXISTS {name} (id INT PRIMARY KEY)"),
            format!("INSERT INTO {name} VALUES (1)"),
            format!("DROP TABLE {name}"),
        ];
        for s in &steps {
            if let Err(e) = c.query_drop(s).await {
                let _dropped = c.query_drop(format!("DROP TABLE IF EXISTS {name}")).await;
                return Finding::fail(
                    NAME,
                    checked,
                    format!("`{}`: {}", s.split(" (").next().unwrap_or(s), err(e)),
                    "grant the user ALL on the database (W&B migrates its own schema)",
                );
            }
        }
        Finding::pass(NAME, checked, "done")
    }
}

fn err(e: mysql_async::Error) -> String {
    redact(&e.to_string())
}

fn connect_todo(e: &str) -> &'static str {
    if e.contains("1045") || e.contains("Access denied") {
        "the Secret's password is not the server's: run `wbstack up` to write the current one and roll the pods"
    } else if e.contains("1049") || e.contains("Unknown database") {
        "create the database (`wbstack up` makes it on RDS), or fix global.mysql.database"
    } else if e.to_ascii_lowercase().contains("ssl") || e.to_ascii_lowercase().contains("tls") {
        "turn on TLS on the server (require_secure_transport); W&B connects with tls=preferred"
    } else {
        "check the host, the port and that this network reaches the server"
    }
}

#[async_trait]
impl Probe for Mysql {
    fn name(&self) -> &str {
        NAME
    }
    fn checks(&self) -> String {
        self.checked()
    }
    async fn run(&self) -> Vec<Finding> {
        let checked = self.checked();
        let password = match self.target.at.password_or_finding(NAME, &checked) {
            Ok(p) => p,
            Err(f) => return vec![f],
        };
        let mut c = match Conn::new(self.opts(&password)).await {
            Ok(c) => c,
            Err(e) => {
                let e = err(e);
                let todo = connect_todo(&e);
                return vec![Finding::fail(NAME, checked, e, todo)];
            }
        };
        let mut out = vec![Finding::pass(NAME, checked.clone(), "connected")];
        if let Err(e) = self.checks_on(&mut c, &mut out).await {
            out.push(Finding::fail(NAME, checked, e, "check the user's grants"));
        }
        let _closed = c.disconnect().await;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_judged_as_w_and_b_needs() {
        assert_eq!(version_problem("8.0.39"), None);
        assert_eq!(version_problem("8.0.28"), None);
        assert_eq!(version_problem("8.4.2-log"), None);
        assert!(version_problem("8.0.27")
            .unwrap()
            .contains("older than 8.0.28"));
        assert!(version_problem("5.7.44").is_some());
        assert!(version_problem("10.11.6-MariaDB-0+deb12u1")
            .unwrap()
            .contains("MariaDB"));
        assert!(version_problem("").is_some());
    }
}
