//! The benchmark's workload: `username_password` secrets in the emulator and
//! ExternalSecrets shaped like the KES tutorial's (two properties of one
//! secret) reading them, half by id and half by name, 10 % of them sharing
//! their remote secret with another ExternalSecret.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use sm_emulator::Emulator;

/// ExternalSecrets created at once when a fleet is applied.
const CREATE_CONCURRENCY: usize = 32;

/// One ExternalSecret of the fleet.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its name, and the name of the Secret it produces.
    pub name: String,
    /// Index of the remote secret it reads.
    pub secret: usize,
    /// Whether it reads by name (`keyByName: true`) rather than by id.
    pub by_name: bool,
}

/// A remote secret of the fleet.
#[derive(Debug, Clone)]
pub struct RemoteSecret {
    /// Its id in the emulator.
    pub id: String,
    /// Its name (default group).
    pub name: String,
    /// Its current password.
    pub password: String,
}

/// The remote secrets and ExternalSecrets of one benchmark run.
#[derive(Debug)]
pub struct Fleet {
    /// The namespace of the ExternalSecrets.
    pub namespace: String,
    /// Remote secrets, by index.
    pub secrets: Vec<RemoteSecret>,
    /// The ExternalSecrets present from the start.
    pub objects: Vec<Object>,
    /// The ExternalSecrets applied later all at once, for the first-sync
    /// measurement.
    pub late: Vec<Object>,
    /// As many more, applied later one at a time.
    pub paced: Vec<Object>,
    rotations: usize,
}

impl Fleet {
    /// Creates the remote secrets of a fleet of `size` ExternalSecrets (plus
    /// twice `late` more, reading the same secrets) in `emulator`.
    ///
    /// Objects `2k` and `2k + 1` below `size / 10` share one secret (one
    /// reads it by id, the other by name); every other object has its own.
    pub fn seed(emulator: &Emulator, namespace: &str, size: usize, late: usize) -> anyhow::Result<Self> {
        let shared = size / 10 / 2 * 2;
        let secret_count = shared / 2 + (size - shared);
        let secrets = (0..secret_count)
            .map(|index| {
                let name = format!("scale-{index:05}");
                let password = format!("password-v1-{index}");
                let created = emulator.store().create_secret(json!({
                    "secret_type": "username_password",
                    "name": name,
                    "username": format!("app-{index}"),
                    "password": password,
                }))?;
                let id = created["id"].as_str().context("the emulator returned no id")?.to_owned();
                Ok(RemoteSecret { id, name, password })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let object = |index: usize, secret: usize| Object {
            name: format!("es-{index:05}"),
            secret,
            by_name: index % 2 == 1,
        };
        let objects = (0..size)
            .map(|index| object(index, if index < shared { index / 2 } else { index - shared / 2 }))
            .collect();
        // Spread the late objects over the secrets with a stride prime to
        // typical sizes.
        let mut late: Vec<Object> =
            (size..size + 2 * late).map(|index| object(index, index * 7919 % secret_count)).collect();
        let paced = late.split_off(late.len() / 2);
        Ok(Self { namespace: namespace.to_owned(), secrets, objects, late, paced, rotations: 0 })
    }

    /// The ExternalSecret manifest of `object`, as an app team would write it.
    pub fn manifest(&self, object: &Object) -> serde_json::Value {
        let secret = &self.secrets[object.secret];
        let key = if object.by_name { &secret.name } else { &secret.id };
        let entry = |property: &str| json!({"key": key, "name": property, "property": property, "secretType": "username_password"});
        json!({
            "apiVersion": "kubernetes-client.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": object.name, "namespace": self.namespace},
            "spec": {
                "backendType": "ibmcloudSecretsManager",
                "keyByName": object.by_name,
                "data": [entry("username"), entry("password")],
            },
        })
    }

    /// Creates the namespace.
    pub async fn create_namespace(&self, client: &Client) -> anyhow::Result<()> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}});
        namespaces
            .patch(&self.namespace, &PatchParams::apply("scale-bench"), &Patch::Apply(&namespace))
            .await
            .with_context(|| format!("create namespace {}", self.namespace))?;
        Ok(())
    }

    /// Creates `objects` in the cluster, a few at a time, or one `every` so
    /// often; returns when each was sent (the start of its first-sync time).
    pub async fn apply(
        &self,
        client: &Client,
        objects: &[Object],
        every: Option<Duration>,
    ) -> anyhow::Result<Vec<Instant>> {
        let api = crate::external_secrets(client, &self.namespace);
        let Some(period) = every else {
            return futures::stream::iter(objects)
                .map(|object| self.create(&api, object))
                .buffered(CREATE_CONCURRENCY)
                .try_collect()
                .await;
        };
        let mut ticks = tokio::time::interval(period);
        let mut sent = Vec::with_capacity(objects.len());
        for object in objects {
            ticks.tick().await;
            sent.push(self.create(&api, object).await?);
        }
        Ok(sent)
    }

    /// Creates `object` through `api`; returns when it was sent.
    async fn create(&self, api: &Api<DynamicObject>, object: &Object) -> anyhow::Result<Instant> {
        let manifest: DynamicObject = serde_json::from_value(self.manifest(object))?;
        let sent = Instant::now();
        api.create(&PostParams::default(), &manifest)
            .await
            .with_context(|| format!("create ExternalSecret {}", object.name))?;
        Ok(sent)
    }

    /// Rotates the secrets at `indices` (a new version with a new password
    /// each) in `emulator`.
    pub fn rotate(&mut self, emulator: &Emulator, indices: &[usize]) -> anyhow::Result<()> {
        self.rotations += 1;
        for &index in indices {
            let secret = &mut self.secrets[index];
            secret.password = format!("password-v{}-{index}", self.rotations + 1);
            emulator
                .store()
                .create_version(&secret.id, json!({"password": secret.password}))
                .with_context(|| format!("rotate {}", secret.name))?;
        }
        Ok(())
    }

    /// The password each of `objects`' Secrets should hold now, by Secret
    /// name.
    pub fn expected<'a>(&self, objects: impl IntoIterator<Item = &'a Object>) -> Vec<(String, String)> {
        objects
            .into_iter()
            .map(|object| (object.name.clone(), self.secrets[object.secret].password.clone()))
            .collect()
    }

    /// The objects (present from the start) that read one of `indices`.
    pub fn readers(&self, indices: &[usize]) -> Vec<&Object> {
        self.objects.iter().filter(|object| indices.contains(&object.secret)).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sm_emulator::EmulatorConfig;

    use super::*;

    #[tokio::test]
    async fn layout_is_half_by_name_with_ten_percent_sharing() {
        let emulator =
            Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let fleet = Fleet::seed(&emulator, "ns", 100, 6).unwrap();
        assert_eq!(fleet.objects.len(), 100);
        assert_eq!(fleet.secrets.len(), 95, "10 objects share 5 secrets");
        assert_eq!(fleet.objects.iter().filter(|o| o.by_name).count(), 50);
        let mut readers: HashMap<usize, usize> = HashMap::new();
        for object in &fleet.objects {
            *readers.entry(object.secret).or_default() += 1;
        }
        assert_eq!(readers.values().filter(|&&n| n == 2).count(), 5);
        assert_eq!(readers.len(), 95, "every secret is read");
        assert_eq!((fleet.late.len(), fleet.paced.len()), (6, 6));
        assert!(
            fleet.late.iter().chain(&fleet.paced).all(|o| o.secret < 95 && o.name.as_str() >= "es-00100")
        );
        assert_eq!(fleet.paced[0].name, "es-00106");

        let by_name = fleet.manifest(&fleet.objects[1]);
        assert_eq!(by_name["spec"]["keyByName"], true);
        assert_eq!(by_name["spec"]["data"][1]["key"], fleet.secrets[0].name.as_str());
        let by_id = fleet.manifest(&fleet.objects[0]);
        assert_eq!(by_id["spec"]["keyByName"], false);
        assert_eq!(by_id["spec"]["data"][1]["key"], fleet.secrets[0].id.as_str());
        assert_eq!(by_id["spec"]["data"][1]["property"], "password");
    }

    #[tokio::test]
    async fn rotation_changes_the_expected_passwords_of_all_readers() {
        let emulator =
            Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut fleet = Fleet::seed(&emulator, "ns", 20, 0).unwrap();
        let before = fleet.expected(&fleet.objects);
        fleet.rotate(&emulator, &[0, 5]).unwrap();
        let readers: Vec<String> = fleet.readers(&[0, 5]).iter().map(|o| o.name.clone()).collect();
        assert_eq!(readers, ["es-00000", "es-00001", "es-00006"]);
        let after = fleet.expected(&fleet.objects);
        let changed: Vec<&String> =
            before.iter().zip(&after).filter(|(b, a)| b.1 != a.1).map(|(_, a)| &a.0).collect();
        assert_eq!(changed, readers.iter().collect::<Vec<_>>());
        let stored = emulator.store().secret(&fleet.secrets[5].id).unwrap();
        assert_eq!(stored["password"], fleet.secrets[5].password.as_str());
    }
}
