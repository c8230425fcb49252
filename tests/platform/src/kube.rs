//! A real Kubernetes control plane on loopback: etcd, kube-apiserver and a
//! kube-controller-manager running the garbage collector (owner references
//! are honoured) and the namespace controller (namespaces really go away).
//!
//! There are no nodes and no kubelet: tests that need a pod belong to a
//! cluster tier this platform does not offer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::OnceCell;

use crate::pki::Pki;
use crate::process::{PROBE_TIMEOUT, Supervised, free_port, wait_for_http};
use crate::{Error, Result, binaries, io_context};

/// Label put on every namespace made by [`TestCluster::namespace`].
pub const TEST_NAMESPACE_LABEL: &str = "cos-secrets-sync.test/ephemeral";

const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A running control plane. Dropping it stops every process and removes its
/// data; [`TestCluster::shared`] keeps one for the life of the test binary.
#[derive(Debug)]
pub struct TestCluster {
    server: String,
    token: String,
    kubeconfig: PathBuf,
    // Field order is drop order: the controller manager and the API server
    // stop before etcd.
    _controller_manager: Supervised,
    _apiserver: Supervised,
    _etcd: Supervised,
}

static SHARED: OnceCell<Result<TestCluster, String>> = OnceCell::const_new();

impl TestCluster {
    /// The control plane shared by every test of this binary, started on
    /// first use. Panics with the start-up error (and log tail) if it cannot
    /// start, which fails the calling test with a readable message.
    pub async fn shared() -> &'static TestCluster {
        let cluster = SHARED.get_or_init(|| async { Self::start().await.map_err(|e| format!("{e}")) }).await;
        match cluster {
            Ok(cluster) => cluster,
            Err(error) => panic!("the shared test cluster could not start: {error}"),
        }
    }

    /// Starts a private control plane in a fresh temporary directory.
    pub async fn start() -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("cos-sync-cluster-")
            .tempdir()
            .map_err(io_context("create the cluster directory"))?
            .keep();
        let pki = Pki::generate()?;
        let token = random_token();
        write(&root.join("ca.crt"), &pki.ca_pem)?;
        write(&root.join("apiserver.crt"), &pki.serving_cert_pem)?;
        write(&root.join("apiserver.key"), &pki.serving_key_pem)?;
        write(&root.join("service-account.key"), &pki.service_account_key_pem)?;
        write(&root.join("service-account.pub"), &pki.service_account_public_pem)?;
        write(&root.join("tokens.csv"), &format!("{token},admin,admin,system:masters\n"))?;

        let (etcd, etcd_url) = start_etcd(&root).await?;
        let (apiserver, server) = start_apiserver(&root, &etcd_url, &pki.ca_pem, &token).await?;
        let kubeconfig = root.join("kubeconfig");
        write(&kubeconfig, &kubeconfig_yaml(&server, &pki.ca_pem, &token))?;
        let controller_manager = start_controller_manager(&root, &kubeconfig).await?;

        tracing::info!(%server, kubeconfig = %kubeconfig.display(), "test cluster ready");
        Ok(Self {
            server,
            token,
            kubeconfig,
            _controller_manager: controller_manager,
            _apiserver: apiserver,
            _etcd: etcd,
        })
    }

    /// The API server's URL (`https://127.0.0.1:PORT`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The admin bearer token (member of `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.token
    }

    /// Path of an admin kubeconfig for this cluster, usable with `kubectl`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A new admin client bound to the calling async runtime.
    pub async fn client(&self) -> Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        kube::Client::try_from(config)
            .map_err(|source| Error::Kube { context: "build a client".into(), source })
    }

    /// Creates a namespace with a random name for one test. It is deleted
    /// when the returned guard drops.
    pub async fn namespace(&self) -> Result<TestNamespace> {
        let client = self.client().await?;
        let name = format!("test-{}", random_suffix());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client)
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(|source| Error::Kube { context: format!("create namespace {name}"), source })?;
        Ok(TestNamespace { name, kubeconfig: self.kubeconfig.clone() })
    }
}

/// A namespace that lives as long as one test.
#[derive(Debug)]
pub struct TestNamespace {
    name: String,
    kubeconfig: PathBuf,
}

impl TestNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    /// Deletes the namespace (the namespace controller removes its content).
    /// Runs on a helper thread with its own runtime, since the test's runtime
    /// may be shutting down; failures are ignored because the whole cluster
    /// goes away with the test binary anyway.
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        let kubeconfig = self.kubeconfig.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                let config = kube::Config::from_custom_kubeconfig(
                    Kubeconfig::read_from(&kubeconfig)?,
                    &KubeConfigOptions::default(),
                )
                .await?;
                let client = kube::Client::try_from(config)?;
                Api::<Namespace>::all(client).delete(&name, &DeleteParams::background()).await?;
                anyhow::Ok(())
            })
        })
        .join();
    }
}

async fn start_etcd(root: &Path) -> Result<(Supervised, String)> {
    let url = format!("http://127.0.0.1:{}", free_port()?);
    let mut command = Command::new(binaries::path("etcd")?);
    command
        .arg("--data-dir")
        .arg(root.join("etcd"))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{}", free_port()?))
        .arg("--unsafe-no-fsync")
        .arg("--log-level=warn");
    let mut etcd = Supervised::spawn("etcd", &command, &root.join("etcd.log"), None)?;
    let http = reqwest::Client::builder().timeout(PROBE_TIMEOUT).build()?;
    wait_for_http(&mut etcd, READY_TIMEOUT, http.get(format!("{url}/health"))).await?;
    Ok((etcd, url))
}

/// Starts kube-apiserver; it also owns the removal of the whole cluster
/// directory, being the last process to stop.
async fn start_apiserver(
    root: &Path,
    etcd_url: &str,
    ca_pem: &str,
    token: &str,
) -> Result<(Supervised, String)> {
    let port = free_port()?;
    let server = format!("https://127.0.0.1:{port}");
    let file = |name: &str| root.join(name).display().to_string();
    let mut command = Command::new(binaries::path("kube-apiserver")?);
    command
        .arg(format!("--etcd-servers={etcd_url}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg(format!("--secure-port={port}"))
        .arg(format!("--tls-cert-file={}", file("apiserver.crt")))
        .arg(format!("--tls-private-key-file={}", file("apiserver.key")))
        .arg(format!("--token-auth-file={}", file("tokens.csv")))
        .arg("--authorization-mode=RBAC")
        .arg(format!("--service-account-key-file={}", file("service-account.pub")))
        .arg(format!("--service-account-signing-key-file={}", file("service-account.key")))
        .arg("--service-account-issuer=https://kubernetes.default.svc")
        .arg("--api-audiences=https://kubernetes.default.svc,iam")
        .arg("--service-cluster-ip-range=10.0.0.0/24")
        .arg("--allow-privileged=true")
        .arg("--enable-priority-and-fairness=false")
        .arg("--profiling=false")
        .arg("--v=1");
    let mut apiserver =
        Supervised::spawn("kube-apiserver", &command, &root.join("kube-apiserver.log"), Some(root))?;
    let https = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?])
        .build()?;
    wait_for_http(&mut apiserver, READY_TIMEOUT, https.get(format!("{server}/readyz")).bearer_auth(token))
        .await?;
    Ok((apiserver, server))
}

/// Starts kube-controller-manager with only the controllers that need no
/// nodes: the garbage collector and the namespace controller.
async fn start_controller_manager(root: &Path, kubeconfig: &Path) -> Result<Supervised> {
    let port = free_port()?;
    let mut command = Command::new(binaries::path("kube-controller-manager")?);
    command
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg("--controllers=garbagecollector,namespace")
        .arg("--leader-elect=false")
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--secure-port={port}"))
        .arg("--use-service-account-credentials=false")
        .arg("--v=1");
    let log = root.join("kube-controller-manager.log");
    let mut controller_manager = Supervised::spawn("kube-controller-manager", &command, &log, None)?;
    // Its serving certificate is self-signed, generated at start.
    let https =
        reqwest::Client::builder().timeout(PROBE_TIMEOUT).tls_danger_accept_invalid_certs(true).build()?;
    wait_for_http(
        &mut controller_manager,
        READY_TIMEOUT,
        https.get(format!("https://127.0.0.1:{port}/healthz")),
    )
    .await?;
    Ok(controller_manager)
}

fn kubeconfig_yaml(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: cos-secrets-sync-test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: cos-secrets-sync-test
  context:
    cluster: cos-secrets-sync-test
    user: admin
current-context: cos-secrets-sync-test
"
    )
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(io_context(format!("write {}", path.display())))
}

fn random_token() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 40)
}

/// A short random lowercase suffix for names of test objects.
pub fn random_suffix() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 8).to_ascii_lowercase()
}
