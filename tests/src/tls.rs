//! Certificate authorities made by a test: a CA, and a server certificate it signed for
//! `localhost` and `127.0.0.1`, written as PEM files that real servers (redis-server,
//! postgres, the Pulsar test broker, an HTTPS webhook receiver) and the gateway's `--*-ca-file`
//! flags read. Two `TestCa`s do not trust each other: a client given the other CA's file must
//! refuse the server.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::fixtures::unique_id;

/// A CA and one server certificate it signed, as PEM strings and files in a temp dir (removed
/// on drop).
pub struct TestCa {
    /// The directory holding `ca.pem`, `server.pem` and `server.key`.
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// The server certificate (PEM), for `localhost` and `127.0.0.1`.
    pub cert_pem: String,
    /// The server certificate's private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl TestCa {
    /// A new CA named `name` and a server certificate signed by it.
    pub fn new(name: &str) -> TestCa {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("chat test CA {name}"));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(ca, ca_key).expect("self-signed CA");

        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_key = KeyPair::generate().expect("server key");
        let cert = server
            .signed_by(&server_key, &issuer)
            .expect("sign the server certificate");

        let dir = std::env::temp_dir().join(format!("chat-ca-{name}-{}", unique_id()));
        std::fs::create_dir_all(&dir).expect("create the CA dir");
        let me = TestCa {
            dir,
            ca_pem: issuer.pem(),
            cert_pem: cert.pem(),
            key_pem: server_key.serialize_pem(),
        };
        std::fs::write(me.ca_file(), &me.ca_pem).expect("write ca.pem");
        std::fs::write(me.cert_file(), &me.cert_pem).expect("write server.pem");
        std::fs::write(me.key_file(), &me.key_pem).expect("write server.key");
        me
    }

    /// `ca.pem`: what a client is told to trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `server.pem`: the server's certificate.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// `server.key`: the server's private key.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The server side of the Pulsar test broker and of HTTPS receivers.
    pub fn server_tls(&self) -> pulsar_test_broker::ServerTls {
        pulsar_test_broker::ServerTls::from_pem(&self.cert_pem, &self.key_pem)
            .expect("the test CA's server certificate loads")
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
