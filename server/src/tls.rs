//! TLS on the main port (`--tls-cert`, `--tls-key`): `wss://` and `https://` on the same port,
//! rustls on ring, certificates from PEM files, reloaded without dropping a connection.
//!
//! The certificate in use sits behind a resolver rustls asks at each handshake, so a reload
//! swaps it for the handshakes that follow while every open connection keeps its session.
//! Reloads happen on SIGHUP and when either file's content changes (checked every
//! [`RELOAD_CHECK`]: certbot, cert-manager and Kubernetes secret mounts replace files without
//! signalling anyone). A pair that fails to load (unreadable, not PEM, a key that is not the
//! certificate's, or the key not yet written) is logged and the previous one kept. Without TLS
//! SIGHUP is still taken, and logged: a `systemctl reload` must not end the process.
//!
//! [`crate::listener`] runs the handshake under its request-head deadline and counts it against
//! its bound on connections not yet upgraded, so a client that never finishes it holds nothing
//! for long.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How often the files are read again to see whether they changed.
const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// Where the certificate chain and its private key are (PEM, the chain's leaf first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The main port's TLS: what accepts connections, and the certificate it presents.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certificate: Arc<Certificate>,
}

/// The pair in use, and the files' content it was loaded from (to notice a change).
#[derive(Debug)]
struct Certificate {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    pem: Pem,
}

/// Both files' bytes.
#[derive(Debug, PartialEq, Eq)]
struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Tls {
    /// Loads the pair; an error says which file is wrong and why.
    pub fn load(files: &TlsFiles) -> Result<Tls, String> {
        let provider = Arc::new(ring::default_provider());
        let pem = Pem::read(files)?;
        let key = pem.certified_key(files, &provider)?;
        let certificate = Arc::new(Certificate {
            files: files.clone(),
            provider: provider.clone(),
            current: RwLock::new(Loaded { key, pem }),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        // WebSockets upgrade from HTTP/1.1 only, and the listener serves nothing else.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }

    /// The server side of the handshake on an accepted connection (no deadline of its own:
    /// the listener sets it).
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(tcp).await
    }
}

/// Until `shutdown`: reloads the pair on SIGHUP, and when either file's content changes. Without
/// TLS it still takes SIGHUP (a `systemctl reload`), which would otherwise end the process.
/// SIGHUP is taken from the call on, not from the future's first poll.
pub fn reload_on_change(
    tls: Option<Tls>,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> {
    let mut hangups = hangups();
    async move {
        let mut every_check = tokio::time::interval(RELOAD_CHECK);
        every_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let asked = tokio::select! {
                _ = every_check.tick(), if tls.is_some() => false,
                _ = next_hangup(&mut hangups) => true,
                _ = shutdown.cancelled() => return,
            };
            match &tls {
                Some(tls) => tls.certificate.reload(asked),
                None => tracing::info!("SIGHUP: no TLS certificate to reload"),
            }
        }
    }
}

impl Certificate {
    /// Loads the files again if they changed (or if `asked`, by SIGHUP); keeps the pair in use
    /// when the new one does not load.
    fn reload(&self, asked: bool) {
        let files = &self.files;
        let loaded = Pem::read(files).and_then(|pem| {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            if current.pem == pem && !asked {
                return Ok(None);
            }
            drop(current);
            let key = pem.certified_key(files, &self.provider)?;
            Ok(Some(Loaded { key, pem }))
        });
        match loaded {
            Ok(Some(loaded)) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(%err, "TLS certificate not reloaded; keeping the current one")
            }
        }
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Some(current.key.clone())
    }
}

impl Pem {
    fn read(files: &TlsFiles) -> Result<Pem, String> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        Ok(Pem {
            cert: read(&files.cert)?,
            key: read(&files.key)?,
        })
    }

    /// The chain and key, checked to belong together.
    fn certified_key(
        &self,
        files: &TlsFiles,
        provider: &CryptoProvider,
    ) -> Result<Arc<CertifiedKey>, String> {
        let (cert_path, key_path) = (files.cert.display(), files.key.display());
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{cert_path}: {e}"))?;
        if chain.is_empty() {
            return Err(format!("{cert_path}: no PEM certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| match e {
            tokio_rustls::rustls::pki_types::pem::Error::NoItemsFound => {
                format!("{key_path}: no PEM private key in it")
            }
            e => format!("{key_path}: {e}"),
        })?;
        CertifiedKey::from_der(chain, key, provider)
            .map(Arc::new)
            .map_err(|e| format!("{cert_path} with {key_path}: {e}"))
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

/// SIGHUP's stream; without it (it could not be registered) reloads still follow file changes.
fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::hangup())
            .inspect_err(|err| tracing::warn!(%err, "no TLS reload on SIGHUP"))
            .ok()
    }
}

async fn next_hangup(hangups: &mut Hangups) {
    #[cfg(unix)]
    if let Some(hangups) = hangups {
        if hangups.recv().await.is_some() {
            return;
        }
    }
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &std::path::Path, cert: &[u8], key: &[u8]) -> TlsFiles {
        std::fs::create_dir_all(dir).unwrap();
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("overtone-tls-{}", std::process::id()));
        let missing = TlsFiles {
            cert: dir.join("absent.pem"),
            key: dir.join("absent.key"),
        };
        let err = Tls::load(&missing).err().unwrap();
        assert!(
            err.contains("cannot read") && err.contains("absent.pem"),
            "{err}"
        );

        let files = files_in(&dir, b"not a certificate", b"");
        let err = Tls::load(&files).err().unwrap();
        assert!(err.contains("no PEM certificate"), "{err}");

        let junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let files = files_in(&dir, junk, b"no key here");
        let err = Tls::load(&files).err().unwrap();
        assert!(err.contains("no PEM private key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
