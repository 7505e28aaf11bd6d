//! Response objects in the shapes of the recorded fixtures: each object
//! starts as a copy of a recorded one and only the values change, so the
//! keys and their JSON types are the recorded ones (checked by a test).

use serde_json::{Map, Value, json};

pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/cloudstack/{name}",
        crate::repo_root().display()
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn first(name: &str, wrapper: &str, key: &str) -> Map<String, Value> {
    match &fixture(name)[wrapper][key][0] {
        Value::Object(map) => map.clone(),
        other => panic!("{name}: {wrapper}.{key}[0] is {other}"),
    }
}

fn job_object(name: &str, key: &str) -> Map<String, Value> {
    match &fixture(name)["queryasyncjobresultresponse"]["jobresult"][key] {
        Value::Object(map) => map.clone(),
        other => panic!("{name}: jobresult.{key} is {other}"),
    }
}

/// Which recorded object each kind is modelled on.
pub struct Templates {
    pub vm: Map<String, Value>,
    pub nic: Map<String, Value>,
    pub volume: Map<String, Value>,
    pub snapshot: Map<String, Value>,
    pub template: Map<String, Value>,
    pub offering: Map<String, Value>,
    pub zone: Map<String, Value>,
    pub network: Map<String, Value>,
    pub ostypes: Vec<Value>,
    pub job: Map<String, Value>,
}

impl Templates {
    pub fn load() -> Templates {
        let vm = first(
            "listVirtualMachines_default.json",
            "listvirtualmachinesresponse",
            "virtualmachine",
        );
        let nic = match &vm["nic"][0] {
            Value::Object(map) => map.clone(),
            _ => panic!("vm fixture has no nic"),
        };
        let mut job = match &fixture("queryAsyncJobResult_11117.json")["queryasyncjobresultresponse"]
        {
            Value::Object(map) => map.clone(),
            _ => panic!("job fixture"),
        };
        job.remove("jobresult");
        Templates {
            vm,
            nic,
            volume: first("listVolumes_default.json", "listvolumesresponse", "volume"),
            snapshot: job_object("queryAsyncJobResult_1300001.json", "snapshot"),
            template: job_object("queryAsyncJobResult_1300003.json", "template"),
            offering: first(
                "listServiceOfferings_default.json",
                "listserviceofferingsresponse",
                "serviceoffering",
            ),
            zone: first("listZones_deployip.json", "listzonesresponse", "zone"),
            network: first(
                "listNetworks_default.json",
                "listnetworksresponse",
                "network",
            ),
            ostypes: fixture("listOsTypes_default.json")["listostypesresponse"]["ostype"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            job,
        }
    }
}

/// Copies `template` and sets `values`; a key the template lacks is a bug
/// in the fake (it would invent a field), so it panics.
pub fn shaped(template: &Map<String, Value>, values: Value) -> Value {
    let mut out = template.clone();
    if let Value::Object(values) = values {
        for (key, value) in values {
            assert!(
                out.contains_key(&key),
                "fake sets '{key}', which the recorded object does not have"
            );
            out.insert(key, value);
        }
    }
    Value::Object(out)
}

/// Like [`shaped`], for fields CloudStack documents but the fixture lacks.
pub fn shaped_with_extra(template: &Map<String, Value>, values: Value, extra: Value) -> Value {
    let mut out = shaped(template, values);
    if let (Value::Object(out), Value::Object(extra)) = (&mut out, extra) {
        out.extend(extra);
    }
    out
}

/// A list answer: `{count, <key>: [...]}`, or `{}` when empty.
pub fn list(key: &str, items: Vec<Value>, total: usize) -> Value {
    if items.is_empty() {
        return json!({});
    }
    json!({ "count": total, key: items })
}
