//! W&B itself: its host answers over HTTPS with a certificate valid for its name (or the check
//! is skipped, and said so), and the app's health endpoint (`/healthz`, the path the chart's
//! liveness probe uses) answers 200 through the ingress.

use crate::run::Probe;
use crate::verdict::Finding;
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use wbstack_k8s::{error_chain as chain, rustls_provider as provider};

const NAME: &str = "host";

/// The probe for `global.host`.
pub struct Host {
    pub url: String,
    /// Trust only this CA bundle (PEM) instead of the system's roots (`SSL_CERT_FILE` also
    /// replaces those).
    pub ca: Option<String>,
    /// Do not check the certificate (said in the findings).
    pub skip_certificate: bool,
}

impl Host {
    fn tls(&self) -> Result<ClientConfig, String> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        if self.skip_certificate {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                .with_no_client_auth());
        }
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(pem) => {
                for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let c = c.map_err(|e| format!("the CA bundle: {e}"))?;
                    roots.add(c).map_err(|e| format!("the CA bundle: {e}"))?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _unusable = roots.add(c);
                }
            }
        }
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    }

    async fn get(&self, url: &str) -> Result<u16, String> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls()?)
            .https_or_http()
            .enable_http1()
            .build();
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let res = client.get(uri).await.map_err(|e| chain(&e))?;
        let status = res.status().as_u16();
        let _body = res.into_body().collect().await;
        Ok(status)
    }
}

#[async_trait]
impl Probe for Host {
    fn name(&self) -> &str {
        NAME
    }
    fn checks(&self) -> String {
        format!("{}/healthz", self.url.trim_end_matches('/'))
    }
    async fn run(&self) -> Vec<Finding> {
        let url = self.checks();
        let mut out = Vec::new();
        if !self.url.starts_with("https://") {
            out.push(Finding::warn(
                NAME,
                "HTTPS",
                format!("{} is not HTTPS", self.url),
                "put a certificate on the ingress and set spec.wandb.host to https://",
            ));
        } else if self.skip_certificate {
            out.push(Finding::warn(
                NAME,
                "the host's certificate",
                "not checked (--skip-certificate)",
                "check it without the flag once the certificate is in place",
            ));
        }
        out.push(match self.get(&url).await {
            Ok(200) => Finding::pass(NAME, format!("GET {url}"), "200: healthy"),
            Ok(s) => Finding::fail(
                NAME,
                format!("GET {url}"),
                format!("answered {s}"),
                "look at the app's pods (`kubectl logs`) and the ingress's backends",
            ),
            Err(e) => {
                let cert = e.contains("certificate") || e.contains("Certificate");
                Finding::fail(
                    NAME,
                    format!("GET {url}"),
                    e,
                    if cert {
                        "the certificate does not match the host: fix the ingress's certificate (or pass --skip-certificate to look past it)"
                    } else {
                        "check DNS for the host, the load balancer and the ingress"
                    },
                )
            }
        });
        out
    }
}

/// Accepts any certificate: `--skip-certificate` only. Signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
