//! A throwaway public-key infrastructure for one local control plane: a CA,
//! a serving certificate for loopback, and the service-account signing key.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};

use crate::Result;

/// PEM material written to disk for kube-apiserver and clients.
#[derive(Debug)]
pub struct Pki {
    /// The CA certificate clients trust.
    pub ca_pem: String,
    /// The serving certificate, valid for `localhost` and `127.0.0.1`.
    pub serving_cert_pem: String,
    /// The serving certificate's private key.
    pub serving_key_pem: String,
    /// The private key that signs service-account tokens.
    pub service_account_key_pem: String,
    /// Its public key, which verifies them.
    pub service_account_public_pem: String,
}

impl Pki {
    /// Generates a fresh CA and the certificates signed by it (ECDSA P-256).
    pub fn generate() -> Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        ca_params.distinguished_name = named("cos-secrets-sync test CA");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "kubernetes.default.svc".to_owned(),
        ])?;
        serving.distinguished_name = named("kube-apiserver");
        serving.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving.signed_by(&serving_key, &issuer)?;

        let service_account_key = KeyPair::generate()?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            serving_cert_pem: serving_cert.pem(),
            serving_key_pem: serving_key.serialize_pem(),
            service_account_key_pem: service_account_key.serialize_pem(),
            service_account_public_pem: service_account_key.public_key_pem(),
        })
    }
}

fn named(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}
