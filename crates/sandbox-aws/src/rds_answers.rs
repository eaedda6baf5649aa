//! RDS where moto 5.2.6 answers otherwise than AWS: ModifyDBInstance with
//! `EnablePerformanceInsights` is accepted and not applied (DescribeDBInstances keeps what
//! CreateDBInstance set). The proxy notes the setting each instance was last given and answers
//! DescribeDBInstances with it, as AWS does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Performance Insights by instance, as last modified.
pub type Insights = Arc<Mutex<HashMap<String, bool>>>;

/// Notes the Performance Insights setting of a ModifyDBInstance.
pub fn note(op: &str, p: &HashMap<String, String>, insights: &Insights) {
    if op != "ModifyDBInstance" {
        return;
    }
    if let (Some(id), Some(on)) = (
        p.get("DBInstanceIdentifier"),
        p.get("EnablePerformanceInsights"),
    ) {
        insights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), on == "true");
    }
}

/// moto's DescribeDBInstances answer with each noted instance's setting.
pub fn insights(resp: Vec<u8>, insights: &Insights) -> Vec<u8> {
    let noted = insights.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if noted.is_empty() {
        return resp;
    }
    let text = String::from_utf8_lossy(&resp);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return resp;
    };
    if !head.starts_with("HTTP/1.1 200") {
        return resp;
    }
    let mut out = String::new();
    let mut parts = body.split("<DBInstance>");
    out.push_str(parts.next().unwrap_or_default());
    for part in parts {
        out.push_str("<DBInstance>");
        out.push_str(&patched(part, &noted));
    }
    crate::proxy::http(&out)
}

/// One instance's XML with its noted setting.
fn patched(instance: &str, noted: &HashMap<String, bool>) -> String {
    let id = instance
        .split_once("<DBInstanceIdentifier>")
        .and_then(|(_, rest)| rest.split_once("</DBInstanceIdentifier>"))
        .map(|(id, _)| id);
    let Some(on) = id.and_then(|id| noted.get(id)) else {
        return instance.to_owned();
    };
    let (open, close) = (
        "<PerformanceInsightsEnabled>",
        "</PerformanceInsightsEnabled>",
    );
    match (instance.find(open), instance.find(close)) {
        (Some(i), Some(j)) if i < j => {
            format!("{}{open}{on}{}", &instance[..i], &instance[j..])
        }
        _ => instance.replacen(
            "</DBInstanceIdentifier>",
            &format!("</DBInstanceIdentifier>{open}{on}{close}"),
            1,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Vec<u8> {
        crate::proxy::http(body)
    }

    #[test]
    fn a_modified_instance_is_described_with_its_new_setting_and_others_as_they_are() {
        let noted: Insights = Default::default();
        let p = |id: &str, on: &str| {
            [
                ("DBInstanceIdentifier", id),
                ("EnablePerformanceInsights", on),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
        };
        note("ModifyDBInstance", &p("a", "true"), &noted);
        note("CreateDBInstance", &p("b", "true"), &noted);
        let moto = "<R><DBInstances><DBInstance><DBInstanceIdentifier>a</DBInstanceIdentifier><PerformanceInsightsEnabled>false</PerformanceInsightsEnabled></DBInstance><DBInstance><DBInstanceIdentifier>b</DBInstanceIdentifier><PerformanceInsightsEnabled>false</PerformanceInsightsEnabled></DBInstance></DBInstances></R>";
        let out = String::from_utf8(insights(answer(moto), &noted)).unwrap();
        assert!(out.contains("<DBInstanceIdentifier>a</DBInstanceIdentifier><PerformanceInsightsEnabled>true</PerformanceInsightsEnabled>"), "{out}");
        assert!(out.contains("<DBInstanceIdentifier>b</DBInstanceIdentifier><PerformanceInsightsEnabled>false</PerformanceInsightsEnabled>"), "{out}");
    }
}
