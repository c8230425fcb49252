//! The manifests in `deploy/` are accepted by a real kube-apiserver: every
//! document is server-side applied, and the API server's validation (schemas,
//! RBAC rules, Deployment specs) is the judge.

use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use test_platform::TestCluster;

fn documents(path: &Path) -> Vec<DynamicObject> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("a Kubernetes object"))
        .collect()
}

#[tokio::test]
async fn every_deploy_manifest_is_accepted_by_the_api_server() {
    let cluster = TestCluster::shared().await;
    let client = cluster.client().await.unwrap();
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let params = PatchParams::apply("deploy-manifest-test").force();

    // The CRD first, so that discovery knows ExternalSecret afterwards.
    let mut files = vec![deploy.join("crds/externalsecret.yaml")];
    let mut others: Vec<_> = std::fs::read_dir(&deploy)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    others.sort();
    files.extend(others);

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut applied = std::collections::BTreeSet::new();
    for file in files {
        let discovery = Discovery::new(client.clone()).run().await.unwrap();
        for object in documents(&file) {
            let types = object.types.clone().expect("apiVersion and kind");
            let gvk = kube::api::GroupVersionKind::try_from(&types).unwrap();
            let (resource, capabilities) = discovery
                .resolve_gvk(&gvk)
                .unwrap_or_else(|| panic!("{}: unknown kind {gvk:?}", file.display()));
            let name = object.metadata.name.clone().expect("a name");
            // Example app namespaces the manifests grant access in.
            if let Some(namespace) = &object.metadata.namespace {
                let manifest = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
                namespaces.patch(namespace, &params, &Patch::Apply(&manifest)).await.unwrap();
            }
            let api: Api<DynamicObject> = match capabilities.scope {
                Scope::Cluster => Api::all_with(client.clone(), &resource),
                Scope::Namespaced => Api::namespaced_with(
                    client.clone(),
                    object.metadata.namespace.as_deref().unwrap_or("default"),
                    &resource,
                ),
            };
            api.patch(&name, &params, &Patch::Apply(&object))
                .await
                .unwrap_or_else(|e| panic!("{}: {} {name} rejected: {e}", file.display(), gvk.kind));
            applied.insert(gvk.kind.clone());
        }
    }
    for kind in ["CustomResourceDefinition", "ClusterRole", "Role", "Deployment", "DaemonSet", "ConfigMap"] {
        assert!(applied.contains(kind), "no {kind} among the applied manifests: {applied:?}");
    }
}
