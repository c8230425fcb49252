//! `iam_credentials`, `service_credentials` and `custom_credentials`: values the service
//! generates.
//!
//! Emulator extension: a create or version body may carry the value itself (`api_key`,
//! `credentials`, `credentials_content`), which is stored as sent. Tests use it to seed
//! HMAC keys that a real S3 server accepts.

use serde_json::{Value, json};

use super::{
    Draft, IAM_TTL, NewData, Object, SERVICE_TTL, default_rotation, object, parse_rotation, parse_ttl,
};
use crate::body::Body;
use crate::generate;
use crate::store::StoreError;
use crate::store::model::StoredSecret;

/// Role used when a `service_credentials` body names none.
const DEFAULT_ROLE_CRN: &str = "crn:v1:bluemix:public:iam::::serviceRole:Writer";
/// The COS endpoints document (reference 1.8).
const COS_ENDPOINTS: &str = "https://control.cloud-object-storage.cloud.ibm.com/v2/endpoints";

pub(super) fn create_iam(body: &Body<'_>) -> Result<NewData, StoreError> {
    let ttl = parse_ttl(body, "ttl", IAM_TTL.0, IAM_TTL.1)?
        .ok_or_else(|| StoreError::invalid("ttl", "is required"))?;
    let reuse_api_key = body.bool("reuse_api_key")?;
    let access_groups = body.opt_strings("access_groups")?;
    if access_groups.as_ref().is_some_and(|groups| !(1..=10).contains(&groups.len())) {
        return Err(StoreError::invalid("access_groups", "must hold 1 to 10 access group ids"));
    }
    let service_id = body.opt_str("service_id")?;
    if service_id.is_some() && access_groups.is_some() {
        return Err(StoreError::invalid("service_id", "cannot be sent together with access_groups"));
    }
    let attributes = object([
        ("ttl", Some(ttl)),
        ("reuse_api_key", Some(json!(reuse_api_key))),
        ("access_groups", access_groups.map(|groups| json!(groups))),
        ("service_id_is_static", Some(json!(service_id.is_some()))),
        ("account_id", body.opt_str("account_id")?.map(|id| json!(id))),
        ("rotation", Some(parse_rotation(body)?.map_or_else(default_rotation, Value::Object))),
    ]);
    let service_id = service_id.map_or_else(|| format!("ServiceId-{}", generate::uuid()), str::to_owned);
    Ok(NewData {
        attributes,
        values: iam_values(body)?,
        version_meta: iam_meta(&service_id),
        expiration_date: None,
    })
}

pub(super) fn rotate_iam(secret: &StoredSecret, body: &Body<'_>) -> Result<NewData, StoreError> {
    if let Some(source) = body.opt_str("restore_from_version")? {
        let version = secret.version_index(source).map(|index| &secret.versions[index]).ok_or_else(|| {
            StoreError::invalid("restore_from_version", format!("version '{source}' does not exist"))
        })?;
        let values = version.values.clone().ok_or_else(|| {
            StoreError::invalid("restore_from_version", format!("version '{source}' has no data any more"))
        })?;
        return Ok(NewData { values, version_meta: version.meta.clone(), ..NewData::keeping(secret) });
    }
    if !reuses_api_key(secret) {
        return Err(StoreError::invalid(
            "reuse_api_key",
            "manual rotation is not supported when reuse_api_key is false",
        ));
    }
    let static_service_id = secret.attributes.get("service_id_is_static") == Some(&json!(true));
    let service_id = match secret.current_version().meta.get("service_id").and_then(Value::as_str) {
        Some(id) if static_service_id => id.to_owned(),
        _ => format!("ServiceId-{}", generate::uuid()),
    };
    Ok(NewData { values: iam_values(body)?, version_meta: iam_meta(&service_id), ..NewData::keeping(secret) })
}

/// With `reuse_api_key: false` every read hands out a new API key (reference 1.10).
pub(super) fn renew_iam_key_on_read(secret: &mut StoredSecret) {
    if reuses_api_key(secret) {
        return;
    }
    let version = secret.current_version_mut();
    if let Some(values) = &mut version.values {
        values.insert("api_key".into(), json!(generate::api_key()));
        version.meta.insert("api_key_id".into(), json!(format!("ApiKey-{}", generate::uuid())));
    }
}

fn reuses_api_key(secret: &StoredSecret) -> bool {
    secret.attributes.get("reuse_api_key") == Some(&json!(true))
}

fn iam_values(body: &Body<'_>) -> Result<Object, StoreError> {
    let api_key = body.opt_str("api_key")?.map_or_else(generate::api_key, str::to_owned);
    Ok(object([("api_key", Some(json!(api_key)))]))
}

fn iam_meta(service_id: &str) -> Object {
    object([
        ("api_key_id", Some(json!(format!("ApiKey-{}", generate::uuid())))),
        ("service_id", Some(json!(service_id))),
    ])
}

pub(super) fn create_service(body: &Body<'_>, draft: &Draft<'_>) -> Result<NewData, StoreError> {
    let source = body.object("source_service")?;
    let instance = source.object("instance")?;
    let instance_crn = instance.str("crn")?;
    let role_crn = match source.opt_object("role")? {
        Some(role) => Some(role.str("crn")?),
        None => None,
    };
    let parameters = source.opt_object("parameters")?;
    if let Some(parameters) = &parameters {
        parameters.opt_str("serviceid_crn")?;
        parameters.opt_bool("HMAC")?;
    }
    let mut source_service = object([
        ("instance", Some(json!({ "crn": instance_crn }))),
        ("role", role_crn.map(|crn| json!({ "crn": crn }))),
        ("parameters", parameters.as_ref().map(|p| Value::Object(p.to_map()))),
    ]);
    let ttl = parse_ttl(body, "ttl", SERVICE_TTL.0, SERVICE_TTL.1)?;
    let rotation = parse_rotation(body)?.map_or_else(default_rotation, Value::Object);
    let issued = issue_service_credentials(body, &source_service, draft)?;
    source_service.extend(issued.source_service_ro);
    Ok(NewData {
        attributes: object([
            ("source_service", Some(Value::Object(source_service))),
            ("ttl", ttl),
            ("rotation", Some(rotation)),
        ]),
        values: issued.values,
        version_meta: issued.version_meta,
        expiration_date: None,
    })
}

pub(super) fn rotate_service(
    secret: &StoredSecret,
    body: &Body<'_>,
    draft: &Draft<'_>,
) -> Result<NewData, StoreError> {
    let mut data = NewData::keeping(secret);
    let source_service =
        data.attributes.get("source_service").and_then(Value::as_object).cloned().unwrap_or_default();
    let issued = issue_service_credentials(body, &source_service, draft)?;
    let mut source_service = source_service;
    source_service.extend(issued.source_service_ro);
    data.attributes.insert("source_service".into(), Value::Object(source_service));
    data.values = issued.values;
    data.version_meta = issued.version_meta;
    Ok(data)
}

/// A freshly issued resource key and what the secret shows about it.
struct IssuedCredentials {
    values: Object,
    version_meta: Object,
    /// The read-only parts of `source_service`: `iam` and `resource_key`.
    source_service_ro: Object,
}

/// Issues `credentials` for the source instance, or takes the body's `credentials` as sent.
fn issue_service_credentials(
    body: &Body<'_>,
    source_service: &Object,
    draft: &Draft<'_>,
) -> Result<IssuedCredentials, StoreError> {
    let source = SourceService(source_service);
    let instance_crn = source.string("instance", "crn").unwrap_or_default();
    let resource_key_crn =
        format!("{}:resource-key:{}", instance_crn.trim_end_matches(':'), generate::uuid());
    let credentials = match body.opt_object("credentials")? {
        Some(explicit) => explicit.to_map(),
        None => generate_credentials(&source, &resource_key_crn, draft),
    };
    let field = |key: &str| credentials.get(key).cloned();
    let resource_key = json!({ "crn": resource_key_crn, "name": draft.name });
    let iam = json!({
        "apikey": object([
            ("name", field("iam_apikey_name")),
            ("description", field("iam_apikey_description")),
            ("id", field("iam_apikey_id")),
        ]),
        "role": { "crn": field("iam_role_crn").unwrap_or_else(|| json!(source.role_crn())) },
        "serviceid": object([("crn", field("iam_serviceid_crn"))]),
    });
    Ok(IssuedCredentials {
        version_meta: object([("resource_key", Some(resource_key.clone()))]),
        source_service_ro: object([("iam", Some(iam)), ("resource_key", Some(resource_key))]),
        values: object([("credentials", Some(Value::Object(credentials)))]),
    })
}

/// A new resource key's `credentials` (reference 1.8); `cos_hmac_keys` only with
/// `parameters.HMAC: true`, `endpoints` only for COS instances.
fn generate_credentials(source: &SourceService<'_>, resource_key_crn: &str, draft: &Draft<'_>) -> Object {
    let instance_crn = source.string("instance", "crn").unwrap_or_default();
    let hmac = source.0.get("parameters").and_then(|parameters| parameters.get("HMAC")) == Some(&json!(true));
    let serviceid_crn = source.string("parameters", "serviceid_crn").unwrap_or_else(|| {
        format!(
            "crn:v1:bluemix:public:iam-identity::a/{}::serviceid:ServiceId-{}",
            draft.account_id,
            generate::uuid()
        )
    });
    let hmac_keys = || {
        json!({
            "access_key_id": generate::hex(32),
            "secret_access_key": generate::hex(48),
        })
    };
    object([
        ("apikey", Some(json!(generate::api_key()))),
        ("cos_hmac_keys", hmac.then(hmac_keys)),
        ("endpoints", instance_crn.contains(":cloud-object-storage:").then(|| json!(COS_ENDPOINTS))),
        ("iam_apikey_description", Some(json!(format!("Auto-generated for key {resource_key_crn}")))),
        ("iam_apikey_id", Some(json!(format!("ApiKey-{}", generate::uuid())))),
        ("iam_apikey_name", Some(json!(draft.name))),
        ("iam_role_crn", Some(json!(source.role_crn()))),
        ("iam_serviceid_crn", Some(json!(serviceid_crn))),
        ("resource_instance_id", Some(json!(instance_crn))),
    ])
}

/// Read access to a stored `source_service` object.
struct SourceService<'a>(&'a Object);

impl SourceService<'_> {
    /// The string at `outer.inner`.
    fn string(&self, outer: &str, inner: &str) -> Option<String> {
        self.0.get(outer).and_then(|value| value.get(inner)).and_then(Value::as_str).map(str::to_owned)
    }

    /// `role.crn`, or the Writer role when the secret names none.
    fn role_crn(&self) -> String {
        self.string("role", "crn").unwrap_or_else(|| DEFAULT_ROLE_CRN.to_owned())
    }
}

pub(super) fn create_custom(body: &Body<'_>) -> Result<NewData, StoreError> {
    let configuration = body.str("configuration")?;
    let parameters = body.opt_object("parameters")?.map(|p| Value::Object(p.to_map()));
    let ttl = parse_ttl(body, "ttl", 1, u64::MAX)?;
    Ok(NewData {
        attributes: object([
            ("configuration", Some(json!(configuration))),
            ("parameters", parameters),
            ("ttl", ttl),
            ("rotation", Some(parse_rotation(body)?.map_or_else(default_rotation, Value::Object))),
        ]),
        values: custom_values(body)?,
        version_meta: custom_meta(),
        expiration_date: None,
    })
}

pub(super) fn rotate_custom(secret: &StoredSecret, body: &Body<'_>) -> Result<NewData, StoreError> {
    Ok(NewData { values: custom_values(body)?, version_meta: custom_meta(), ..NewData::keeping(secret) })
}

/// `credentials_content` as sent (strings, numbers and booleans only) or a generated one.
fn custom_values(body: &Body<'_>) -> Result<Object, StoreError> {
    let content = match body.opt_object("credentials_content")? {
        Some(sent) => {
            let content = sent.to_map();
            if let Some((key, _)) = content
                .iter()
                .find(|(_, value)| !(value.is_string() || value.is_number() || value.is_boolean()))
            {
                return Err(StoreError::invalid(sent.name(key), "must be a string, a number or a boolean"));
            }
            content
        }
        None => object([
            ("username", Some(json!(format!("user-{}", generate::hex(8))))),
            ("password", Some(json!(generate::password(generate::PasswordPolicy::default())))),
        ]),
    };
    Ok(object([("credentials_content", Some(Value::Object(content)))]))
}

fn custom_meta() -> Object {
    object([("credentials_id", Some(json!(generate::uuid())))])
}
