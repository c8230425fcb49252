//! Test fixtures shared by the unit tests.

use serde_json::{Value, json};

use crate::crd::{DataEntry, ExternalSecretSpec, IBM_BACKEND};
use crate::provider::Secret;
use crate::provider::model::decode_secret;

/// An `ibmcloudSecretsManager` spec with the given `data` entries.
pub fn spec(data: Value) -> ExternalSecretSpec {
    let data: Vec<DataEntry> = serde_json::from_value(data).expect("data entries");
    ExternalSecretSpec { backend_type: IBM_BACKEND.to_owned(), data, ..ExternalSecretSpec::default() }
}

/// A secret as Secrets Manager returns it: `fields` (at least
/// `secret_type` and the value fields) plus an id.
pub fn secret(fields: Value) -> Secret {
    let mut body = json!({"id": "00000000-0000-4000-8000-000000000001", "name": "fixture"});
    let Value::Object(fields) = fields else { panic!("fields must be an object") };
    body.as_object_mut().unwrap().extend(fields);
    decode_secret(&serde_json::to_vec(&body).unwrap()).expect("a valid secret")
}

/// The fields of a COS `service_credentials` secret, with HMAC keys or not
/// (reference 1.8).
pub fn cos_credentials(hmac: bool) -> Value {
    let mut credentials = json!({
        "apikey": "cos-api-key",
        "endpoints": "https://control.cloud-object-storage.cloud.ibm.com/v2/endpoints",
        "iam_apikey_id": "ApiKey-1",
        "resource_instance_id": "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-guid::",
    });
    if hmac {
        credentials["cos_hmac_keys"] = json!({
            "access_key_id": "0123456789abcdef0123456789abcdef",
            "secret_access_key": "0123456789abcdef0123456789abcdef0123456789abcdef",
        });
    }
    json!({"secret_type": "service_credentials", "credentials": credentials})
}
