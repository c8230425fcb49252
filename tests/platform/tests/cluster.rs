//! The control plane is real: objects round-trip through etcd, watches
//! deliver events, CRDs become Established, and the garbage collector runs.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, conditions, wait::await_condition, watcher};
use test_platform::TestCluster;

/// Upper bound for condition waits; a healthy run needs a fraction of it.
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn secret_created_in_fresh_namespace_is_seen_by_a_watch() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.namespace().await.unwrap();
    let client = cluster.client().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client, ns.name());

    let mut events = watcher(secrets.clone(), watcher::Config::default()).applied_objects().boxed();
    let secret = Secret {
        metadata: ObjectMeta { name: Some("db-credentials".into()), ..ObjectMeta::default() },
        string_data: Some([("username".to_owned(), "app".to_owned())].into()),
        ..Secret::default()
    };
    secrets.create(&PostParams::default(), &secret).await.unwrap();

    let seen = tokio::time::timeout(WAIT, async {
        while let Some(secret) = events.try_next().await.unwrap() {
            if secret.metadata.name.as_deref() == Some("db-credentials") {
                return secret;
            }
        }
        panic!("watch ended without the secret");
    })
    .await
    .expect("the watch delivers the new secret");
    let data = seen.data.expect("stringData is stored as data");
    assert_eq!(data["username"].0, b"app");
}

#[tokio::test]
async fn custom_resource_definition_becomes_established_and_serves_objects() {
    let cluster = TestCluster::shared().await;
    let client = cluster.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.platform-test.cos-secrets-sync.io"},
        "spec": {
            "group": "platform-test.cos-secrets-sync.io",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                }}}
            }]
        }
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();

    let established =
        await_condition(crds, "widgets.platform-test.cos-secrets-sync.io", conditions::is_crd_established());
    tokio::time::timeout(WAIT, established).await.expect("CRD established in time").unwrap();

    let ns = cluster.namespace().await.unwrap();
    let gvk = GroupVersionKind::gvk("platform-test.cos-secrets-sync.io", "v1", "Widget");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, ns.name(), &ApiResource::from_gvk(&gvk));
    let mut widget = DynamicObject::new("w1", &ApiResource::from_gvk(&gvk));
    widget.data = serde_json::json!({"spec": {"size": 3}});
    widgets.create(&PostParams::default(), &widget).await.unwrap();
    let stored = widgets.get("w1").await.unwrap();
    assert_eq!(stored.data["spec"]["size"], 3);
}

#[tokio::test]
async fn garbage_collector_deletes_dependents_of_a_deleted_owner() {
    let cluster = TestCluster::shared().await;
    let ns = cluster.namespace().await.unwrap();
    let client = cluster.client().await.unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    let owner = maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta { name: Some("owner".into()), ..Default::default() },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let dependent = ConfigMap {
        metadata: ObjectMeta {
            name: Some("dependent".into()),
            owner_references: Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: "owner".into(),
                uid: owner.metadata.uid.clone().unwrap(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        ..Default::default()
    };
    let dependent = maps.create(&PostParams::default(), &dependent).await.unwrap();
    maps.delete("owner", &DeleteParams::default()).await.unwrap();

    let uid = dependent.metadata.uid.unwrap();
    let gone = await_condition(maps, "dependent", conditions::is_deleted(&uid));
    tokio::time::timeout(WAIT, gone).await.expect("the garbage collector removes the dependent").unwrap();
}
