//! The README's JSON examples are what omniroute actually reads and writes.

use omniroute::engine::Output;
use omniroute::event::{decode, DEFAULT_MAX_RECORD_BYTES};

fn json_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "```json" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            out.push(block.join("\n"));
        }
    }
    out
}

#[test]
fn every_event_and_output_example_parses() {
    let readme = include_str!("../README.md");
    let blocks = json_blocks(readme);
    let (mut events, mut outputs) = (Vec::new(), Vec::new());
    for b in &blocks {
        let v: serde_json::Value = serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}: {b}"));
        if v.get("id").is_some() {
            let e = decode(b.as_bytes(), DEFAULT_MAX_RECORD_BYTES)
                .unwrap_or_else(|e| panic!("{e}: {b}"));
            events.push(e.body.type_name());
        } else {
            let o: Output = serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}: {b}"));
            outputs.push(o);
        }
    }
    let mut kinds = events.clone();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds.len(), 9, "one example per event type: {events:?}");
    assert!(matches!(
        outputs.as_slice(),
        [
            Output::Offer(_),
            Output::OfferWithdrawn(_),
            Output::AgentAway(_)
        ]
    ));
}
