//! `promgate demo` prepares three real Prometheus servers and a configuration that promgate
//! serves: both data centres answer, eu1-b's gap is filled from eu1-a, and eu1's older week
//! comes from its blocks.

mod common;

use common::{Gateway, enc};

#[test]
fn demo_servers_and_config_answer_through_promgate() {
    let dir = tempfile::tempdir().unwrap();
    let demo = promgate::demo::prepare_demo(dir.path(), "127.0.0.1:0", 8).expect("demo starts");
    assert_eq!(demo.backends.len(), 3);
    promgate::config::Config::load(&demo.config_path).expect("the written config is valid");
    let gw = Gateway::start(&demo.config_path);

    let t = demo.data_end_ms / 1000;
    let (status, answer) = gw.get_json(&format!(
        "/api/v1/query?query={}&time={t}",
        enc("count by (cluster) (demo_temperature_celsius)")
    ));
    assert_eq!(status, 200, "{answer}");
    let mut counts: Vec<(String, String)> = answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["cluster"].as_str().unwrap().to_string(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![
            ("eu1".to_string(), "4".to_string()),
            ("us1".to_string(), "6".to_string())
        ]
    );

    let (start, end) = (demo.gap.0 / 1000 - 1800, demo.gap.1 / 1000 + 1800);
    let (status, answer) = gw.get_json(&format!(
        "/api/v1/query_range?query={}&start={start}&end={end}&step=60",
        enc("demo_temperature_celsius{cluster=\"eu1\"}")
    ));
    assert_eq!(status, 200, "{answer}");
    let expected = ((end - start) / 60 + 1) as usize;
    for s in answer["data"]["result"].as_array().unwrap() {
        assert_eq!(
            s["values"].as_array().unwrap().len(),
            expected,
            "{}",
            s["metric"]
        );
    }
    // A week back only the blocks hold eu1; us1 has nothing there.
    let (blocks, from, to) = &demo.blocks;
    assert!(blocks.is_dir());
    let week_ago = (from + (to - from) / 2) / 1000;
    let (status, answer) = gw.get_json(&format!(
        "/api/v1/query?query={}&time={week_ago}",
        enc("count by (cluster) (demo_temperature_celsius)")
    ));
    assert_eq!(status, 200, "{answer}");
    let result = answer["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{answer}");
    assert_eq!(result[0]["metric"]["cluster"], "eu1");
    assert_eq!(result[0]["value"][1], "4");
    assert!(demo.tips("127.0.0.1:9090").matches("curl -sG").count() >= 6);
}
