//! Redis as the pods reach it: TLS and AUTH as the values configure them, PING, the server's
//! version, and that a wrong password is refused.

use crate::run::Probe;
use crate::verdict::Finding;
use crate::wiring::RedisTarget;
use async_trait::async_trait;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use std::time::Duration;
use wbstack_engine::redact;

const NAME: &str = "redis";
/// W&B's documented floor.
const OLDEST: (u32, u32) = (6, 2);
/// How long one connection may take.
const CONNECT: Duration = Duration::from_secs(8);

/// The probe for the Redis the values name.
pub struct Redis {
    pub target: RedisTarget,
}

impl Redis {
    fn info(&self, password: &str) -> Result<redis::Client, String> {
        let t = &self.target;
        let addr = if t.tls {
            ConnectionAddr::TcpTls {
                host: t.at.host.clone(),
                port: t.at.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(t.at.host.clone(), t.at.port)
        };
        let settings = match password {
            "" => RedisConnectionInfo::default(),
            p => RedisConnectionInfo::default().set_password(p),
        };
        let info: ConnectionInfo = addr
            .into_connection_info()
            .map_err(|e| e.to_string())?
            .set_redis_settings(settings);
        let client = match (&t.at.ca, t.tls) {
            (Some(ca), true) => {
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.as_bytes().to_vec()),
                };
                redis::Client::build_with_tls(info, certs)
            }
            _ => redis::Client::open(info),
        };
        client.map_err(|e| e.to_string())
    }

    async fn connect(&self, password: &str) -> Result<redis::aio::MultiplexedConnection, String> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT))
            .set_response_timeout(Some(CONNECT));
        let client = self.info(password)?;
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| redact(&e.to_string()))
    }

    fn checked(&self) -> String {
        let t = &self.target;
        let how = if t.tls { "TLS" } else { "plain TCP" };
        let from = match &t.at.password {
            Ok(s) => format!("the password in {}", s.reference()),
            Err(_) => "the configured password".into(),
        };
        format!("{}:{} over {how} with {from}", t.at.host, t.at.port)
    }
}

/// `major.minor` of an `INFO server` answer's `redis_version`.
fn version(info: &str) -> Option<(String, (u32, u32))> {
    let v = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))?
        .trim()
        .to_owned();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    Some((v, (major, minor)))
}

async fn ping_and_version(
    c: &mut redis::aio::MultiplexedConnection,
) -> Result<(String, String), String> {
    let pong: String = redis::cmd("PING")
        .query_async(c)
        .await
        .map_err(|e| redact(&e.to_string()))?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(c)
        .await
        .map_err(|e| redact(&e.to_string()))?;
    Ok((pong, info))
}

#[async_trait]
impl Probe for Redis {
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
        let mut out = Vec::new();
        let mut conn = match self.connect(&password).await {
            Ok(c) => c,
            Err(e) => {
                return vec![self.refused(checked, e).await];
            }
        };
        match ping_and_version(&mut conn).await {
            Err(e) => out.push(Finding::fail(
                NAME,
                checked,
                e,
                "check the server's AUTH and ACL settings",
            )),
            Ok((pong, info)) => out.push(match version(&info) {
                Some((v, mm)) if mm >= OLDEST => {
                    Finding::pass(NAME, checked, format!("{pong}, Redis {v}"))
                }
                Some((v, _)) => Finding::fail(
                    NAME,
                    checked,
                    format!("{pong}, Redis {v}"),
                    "W&B needs Redis 6.2 or newer: upgrade the engine (spec.redis.engineVersion)",
                ),
                None => Finding::warn(
                    NAME,
                    checked,
                    format!("{pong}, no redis_version in INFO"),
                    "check the server is Redis",
                ),
            }),
        }
        if !self.target.tls {
            out.push(Finding::warn(
                NAME,
                "TLS to Redis",
                "off: AUTH and data cross the network in clear",
                "turn on transit encryption and set values.global.redis.params.tls: true",
            ));
        }
        out.push(self.wrong_password(&password).await);
        out
    }
}

impl Redis {
    /// Why the pods' password was refused: a server without AUTH refuses any password too.
    async fn refused(&self, checked: String, e: String) -> Finding {
        let lower = e.to_ascii_lowercase();
        if !(lower.contains("wrongpass") || lower.contains("authentication")) {
            let todo = "check the host, the port, TLS (values.global.redis.params.tls) and that this network reaches the server";
            return Finding::fail(NAME, checked, e, todo);
        }
        let open = match self.connect("").await {
            Ok(mut c) => redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        };
        if open {
            return Finding::fail(
                NAME,
                checked,
                format!("{e}: the server has no AUTH, so it refuses every password"),
                "turn on AUTH (an ElastiCache auth token) with the password in the Secret the values name",
            );
        }
        Finding::fail(
            NAME,
            checked,
            e,
            "the Secret's password is not the server's: run `wbstack up` to write the current one and roll the pods",
        )
    }

    /// A password that is not the right one must be refused.
    async fn wrong_password(&self, right: &str) -> Finding {
        let checked = format!(
            "{}:{} refuses a wrong password",
            self.target.at.host, self.target.at.port
        );
        let wrong = format!("{right}-not-this-one");
        let Ok(mut c) = self.connect(&wrong).await else {
            return Finding::pass(NAME, checked, "refused");
        };
        match redis::cmd("PING").query_async::<String>(&mut c).await {
            Err(_) => Finding::pass(NAME, checked, "refused"),
            Ok(_) => Finding::fail(
                NAME,
                checked,
                "accepted: the server has no AUTH",
                "turn on AUTH (an ElastiCache auth token) and store it in the Secret the values name",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_from_info_server() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(version(info), Some(("7.0.15".into(), (7, 0))));
        assert_eq!(version("# Server\r\n"), None);
        assert!(version("redis_version:6.0.9").unwrap().1 < OLDEST);
    }
}
