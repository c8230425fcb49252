//! The `ExternalSecret` custom resource (`kubernetes-client.io/v1`), field
//! for field compatible with kubernetes-external-secrets (KES), so existing
//! manifests apply unchanged.
//!
//! `backendType` is a free string rather than an enum: a manifest for another
//! KES backend is accepted by the API server and then reported in status as
//! unsupported, instead of being rejected without a trace.
//!
//! The committed YAML in `deploy/crds/externalsecret.yaml` is generated from
//! these types by the `crdgen` binary; a unit test fails when it is stale.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only backend this controller serves.
pub const IBM_BACKEND: &str = "ibmcloudSecretsManager";

/// Desired state of an ExternalSecret: which Secrets Manager secrets to copy
/// into the Kubernetes Secret of the same name.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubernetes-client.io",
    version = "v1",
    kind = "ExternalSecret",
    namespaced,
    shortname = "es",
    status = "ExternalSecretStatus",
    doc = "An ExternalSecret names IBM Cloud Secrets Manager secrets to materialize as a Kubernetes Secret (KES compatible).",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.status",
        description = "SUCCESS or ERROR, <message>"
    ),
    printcolumn(
        name = "Last Sync",
        type_ = "date",
        json_path = ".status.lastSync",
        description = "When the Secret was last synced"
    ),
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSpec {
    /// The secret backend. Only `ibmcloudSecretsManager` is served; any
    /// other value is reported in status.
    pub backend_type: String,

    /// When true, `data[].key` is a secret name (`<name>` in the default
    /// group, or `<group>/<name>`) rather than a secret id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_by_name: Option<bool>,

    /// The entries of the generated Secret, one per key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataEntry>,

    /// Secret ids whose JSON object value is merged key by key into the
    /// Secret, before `data`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_from: Vec<String>,

    /// Type, labels, annotations and extra data of the generated Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,

    /// Deprecated: the Secret type; use `template.type`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// One key of the generated Secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataEntry {
    /// The secret id, or its name when `keyByName` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,

    /// The key in the generated Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// A dotted path into the secret's value, e.g. `password` or
    /// `credentials.cos_hmac_keys.access_key_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,

    /// The Secrets Manager secret type, e.g. `username_password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,

    /// The value is already base64: it is decoded, not encoded again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_binary: Option<bool>,
}

/// What KES deep-merged into the generated Secret. Generated values win.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Template {
    /// The Secret type, e.g. `ibm/ibmc-s3fs`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,

    /// Labels and annotations of the generated Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,

    /// Extra Secret data, base64-encoded as in `Secret.data`; entries of
    /// `data` with the same key win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
}

/// Labels and annotations copied onto the generated Secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateMetadata {
    /// Labels of the generated Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Annotations of the generated Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Observed state, with the KES fields plus conditions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretStatus {
    /// `SUCCESS`, or `ERROR, <message>` (as in KES).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,

    /// When the last sync attempt ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync: Option<String>,

    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The `Ready` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A status condition, shaped like `metav1.Condition`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A PascalCase reason, e.g. `SecretSynced`.
    pub reason: String,
    /// A human-readable message; never a secret value.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` the condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl ExternalSecret {
    /// The `Ready` condition, if any.
    pub fn ready_condition(&self) -> Option<&Condition> {
        self.status.as_ref()?.conditions.iter().find(|condition| condition.type_ == "Ready")
    }
}

/// The CustomResourceDefinition as committed in
/// `deploy/crds/externalsecret.yaml`.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&ExternalSecret::crd()).expect("a CRD always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crd_is_current() {
        let committed = include_str!("../../deploy/crds/externalsecret.yaml");
        assert!(
            committed == crd_yaml(),
            "deploy/crds/externalsecret.yaml is stale; regenerate it with \
             `cargo run -p controller --bin crdgen > deploy/crds/externalsecret.yaml`"
        );
    }

    #[test]
    fn kes_manifest_parses() {
        let manifest = r"
apiVersion: kubernetes-client.io/v1
kind: ExternalSecret
metadata: {name: ibmcloud-secrets-manager-example}
spec:
  backendType: ibmcloudSecretsManager
  data:
    - {key: abc, name: username, property: username, secretType: username_password}
    - {key: abc, name: password, property: password, secretType: username_password}
";
        let es: ExternalSecret = serde_yaml::from_str(manifest).unwrap();
        assert_eq!(es.spec.backend_type, IBM_BACKEND);
        assert_eq!(es.spec.data.len(), 2);
        assert_eq!(es.spec.data[1].property.as_deref(), Some("password"));
    }

    #[test]
    fn crd_has_kes_names_and_columns() {
        use kube::CustomResourceExt;
        let crd = ExternalSecret::crd();
        assert_eq!(crd.spec.group, "kubernetes-client.io");
        assert_eq!(crd.spec.names.short_names, Some(vec!["es".to_owned()]));
        let version = &crd.spec.versions[0];
        let columns: Vec<_> =
            version.additional_printer_columns.iter().flatten().map(|column| column.name.as_str()).collect();
        assert_eq!(columns, ["Status", "Last Sync", "Age"]);
        assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
    }
}
