//! TLS configuration for the peer port from PEM files (rustls with the ring provider). The server
//! side takes a certificate chain and a private key; the client side trusts the CA certificates
//! of a PEM bundle (a fleet's own CA) or the certificates a caller builds itself.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::PeerError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config_from_pem(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, PeerError> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| PeerError::Tls(format!("{}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(PeerError::Tls(format!(
            "{}: no certificate",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| PeerError::Tls(format!("{}: {e}", key_path.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PeerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| PeerError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

/// A client config trusting the CA certificates in a PEM file.
pub fn client_config_from_ca_pem(ca_path: &Path) -> Result<Arc<rustls::ClientConfig>, PeerError> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| PeerError::Tls(format!("{}: {e}", ca_path.display())))?;
    for c in certs {
        roots
            .add(c)
            .map_err(|e| PeerError::Tls(format!("{}: {e}", ca_path.display())))?;
    }
    if roots.is_empty() {
        return Err(PeerError::Tls(format!(
            "{}: no certificate",
            ca_path.display()
        )));
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PeerError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
