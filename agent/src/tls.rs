//! TLS for `https://` and `wss://`: the usual web PKI, or — with `--cert-pin` — exactly one
//! server certificate, identified by the SHA-256 of its DER bytes. Pinning is what makes a
//! self-signed server certificate safe to use.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// Records a pin mismatch so the agent can say exactly what happened.
pub type PinFailure = Arc<Mutex<Option<String>>>;

#[derive(Debug)]
struct PinVerifier {
    pin: String,
    provider: Arc<CryptoProvider>,
    failure: PinFailure,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = hex::encode(Sha256::digest(end_entity.as_ref()));
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            let msg = format!(
                "the server's certificate does not match the pinned one (pinned SHA-256 {}, server presented {got})",
                self.pin
            );
            if let Ok(mut f) = self.failure.lock() {
                *f = Some(msg.clone());
            }
            Err(rustls::Error::General(msg))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Normalises a pin: hex, lower case, colons allowed (`AB:CD:…`). `None` when malformed.
pub fn normalise_pin(pin: &str) -> Option<String> {
    let p: String = pin
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    (p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit())).then_some(p)
}

/// The client TLS config, with the pin verifier when a pin is given.
pub fn client_config(pin: Option<&str>) -> Result<(Arc<ClientConfig>, PinFailure), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let failure: PinFailure = Arc::default();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match pin {
        Some(p) => {
            let pin = normalise_pin(p)
                .ok_or("the certificate pin must be 64 hex characters (SHA-256)")?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinVerifier {
                    pin,
                    provider,
                    failure: failure.clone(),
                }))
                .with_no_client_auth()
        }
        None => {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok((Arc::new(config), failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_normalised_and_checked() {
        let hex = "AB".repeat(32);
        assert_eq!(normalise_pin(&hex).unwrap(), "ab".repeat(32));
        let colons: Vec<String> = (0..32).map(|_| "ab".to_string()).collect();
        assert!(normalise_pin(&colons.join(":")).is_some());
        assert!(normalise_pin("abc").is_none());
        assert!(client_config(Some("nope")).is_err());
        assert!(client_config(None).is_ok());
    }
}
